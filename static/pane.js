// The room on screen: its header (name, who is online), the scrolling message list with
// its top edge ("Load earlier messages", "the very beginning"), the jump-to-newest button
// and the typing line. On a message, → reaches its menu button and Enter opens it.
import { el, hueClass, initial } from "./util.js";

const NEAR_BOTTOM_PX = 80;
export const NEAR_TOP_PX = 150;

export class RoomPane {
  constructor(ui, { onNearTop }) {
    this.ui = ui;
    this.room = null;
    ui.scroller.addEventListener("scroll", () => {
      if (!this.room) return;
      if (ui.scroller.scrollTop < NEAR_TOP_PX) onNearTop(this.room);
      if (this.nearBottom()) ui.jump.hidden = true;
    }, { passive: true });
    ui.jump.addEventListener("click", () => {
      this.scrollToBottom();
      ui.input.focus();
    });
    ui.scroller.addEventListener("keydown", (event) => this.#keydown(event));
  }

  /** Show `room` (its list keeps its own scroll position while another room is shown). */
  show(room) {
    const { ui } = this;
    this.room = room;
    ui.scroller.replaceChildren(room.view.edge, room.view.list);
    if (room.scroll === null) this.scrollToBottom();
    else ui.scroller.scrollTop = room.scroll;
    ui.jump.hidden = true;
  }

  /** Remember where the reader was in the room being left. */
  hide() {
    if (this.room) this.room.scroll = this.nearBottom() ? null : this.ui.scroller.scrollTop;
  }

  showEmpty() {
    const { ui } = this;
    this.room = null;
    ui.scroller.replaceChildren(
      el("p", "empty", "You are not in any room. Pick one from the list or create a new one."),
    );
    ui.title.textContent = "No room";
    ui.online.textContent = "";
    ui.online.className = "room-online";
    ui.onlineList.replaceChildren();
    ui.typing.textContent = "";
  }

  /**
   * Title and presence. `people`: Rooms.people(room), one per identity online, each with
   * its label, whether it is you, its role and what you may do to it (a button then opens
   * that menu). `connected` false: who is online is unknown, so none is shown.
   */
  renderHeader(people, connected) {
    const { ui, room } = this;
    if (!room) return;
    ui.title.textContent = `#${room.name}`;
    const known = connected && room.member.live;
    const shown = known ? people : [];
    ui.online.className = "room-online";
    if (known) {
      ui.online.textContent = `${shown.length} online`;
      if (shown.length) ui.online.classList.add("is-online");
    } else if (room.standing.kicked) {
      ui.online.textContent = "You were removed from this room";
      ui.online.classList.add("unknown");
    } else {
      ui.online.textContent = connected ? "Joining…" : "Not connected: who is online is unknown";
      ui.online.classList.add("unknown");
    }
    // Re-rendering replaces the buttons; keep keyboard focus on the same person.
    const focused = ui.onlineList.contains(document.activeElement)
      ? document.activeElement.dataset.userId : undefined;
    ui.onlineList.replaceChildren(...shown.map((person) => personItem(person)));
    if (focused) ui.onlineList.querySelector(`button[data-user-id="${CSS.escape(focused)}"]`)?.focus();
  }

  renderTyping() {
    const names = this.room ? this.room.presence.typing() : [];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    this.ui.typing.textContent = text;
  }

  /** The top of a room's list: loading, a button for older pages, or its beginning. */
  renderEdge(room, loadOlder) {
    const { edge } = room.view;
    const { history } = room;
    edge.replaceChildren();
    edge.className = "history-edge";
    if (!history.loaded) {
      edge.textContent = "Loading messages…";
    } else if (history.loadingOlder) {
      edge.textContent = "Loading earlier messages…";
    } else if (history.hasOlder) {
      const more = el("button", "button ghost small", history.olderError
        ? "Couldn't load earlier messages. Try again" : "Load earlier messages");
      more.type = "button";
      more.addEventListener("click", () => loadOlder(room));
      edge.append(more);
    } else {
      edge.classList.add("start");
      edge.append(el("span", "start-title", `#${room.name}`),
        el("span", "start-text", room.view.count
          ? "This is the very beginning of the room."
          : "No messages yet. Say hello!"));
    }
  }

  nearBottom() {
    const s = this.ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  /** The list is shorter than the window: there is room for an older page. */
  hasRoomAbove() {
    const s = this.ui.scroller;
    return s.scrollHeight <= s.clientHeight + NEAR_TOP_PX;
  }

  scrollToBottom() {
    this.ui.scroller.scrollTop = this.ui.scroller.scrollHeight;
    this.ui.jump.hidden = true;
  }

  /** New messages arrived below while the reader is further up. */
  showJump() {
    this.ui.jump.hidden = false;
  }

  /** Keep the same messages in view while an older page is added above them. */
  keepPlace(fn) {
    const s = this.ui.scroller;
    const height = s.scrollHeight;
    const top = s.scrollTop;
    fn();
    s.scrollTop = top + (s.scrollHeight - height);
  }

  /** Scroll an element (the "new messages" divider) into the middle of the list. */
  reveal(node) {
    const s = this.ui.scroller;
    const top = node.getBoundingClientRect().top - s.getBoundingClientRect().top + s.scrollTop;
    s.scrollTop = Math.max(0, top - s.clientHeight / 3);
  }

  /** Up and Down move between messages (each can take focus, which shows its time). */
  #keydown(event) {
    const { scroller, input } = this.ui;
    // Keys in a message being edited are the editor's.
    if (event.target.closest?.(".edit-form")) return;
    if (this.#menuKey(event)) return;
    if (event.key === "Escape") {
      event.preventDefault();
      input.focus();
      return;
    }
    if (!["ArrowUp", "ArrowDown", "Home", "End"].includes(event.key) || !this.room) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const items = [...this.room.view.list.querySelectorAll(":scope > .msg")];
    if (!items.length) return;
    const active = document.activeElement;
    let i = items.indexOf(active);
    if (event.key === "Home") i = 0;
    else if (event.key === "End") i = items.length - 1;
    else if (i === -1) i = this.#lastInView(items);
    else i = Math.max(0, Math.min(items.length - 1, i + (event.key === "ArrowUp" ? -1 : 1)));
    event.preventDefault();
    items[i].focus();
    items[i].scrollIntoView({ block: "nearest" });
    if (active === scroller && i === items.length - 1) this.ui.jump.hidden = true;
  }

  /** → from a message to its menu button, ← back; Enter on a message opens its menu. */
  #menuKey(event) {
    const target = event.target;
    if (event.altKey || event.ctrlKey || event.metaKey || !target.closest) return false;
    const button = target.classList.contains("msg") ? visibleMenuButton(target) : null;
    if (button && event.key === "ArrowRight") {
      button.focus();
    } else if (button && event.key === "Enter") {
      button.click();
    } else if (target.classList.contains("msg-menu") && event.key === "ArrowLeft") {
      target.closest(".msg").focus();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  #lastInView(items) {
    const bottom = this.ui.scroller.getBoundingClientRect().bottom;
    for (let i = items.length - 1; i >= 0; i--) {
      if (items[i].getBoundingClientRect().top < bottom) return i;
    }
    return items.length - 1;
  }
}

function visibleMenuButton(message) {
  const button = message.querySelector(":scope .msg-menu");
  return button && button.checkVisibility() ? button : null;
}

/** One person in the online list: a button opening their menu when there is one. */
function personItem(person) {
  const li = el("li", `person ${hueClass(person.user_id || person.name)}`);
  const dot = el("span", "avatar small", initial(person.name));
  dot.setAttribute("aria-hidden", "true");
  const text = person.you ? `${person.label} (you)` : person.label;
  const role = ["owner", "moderator", "admin"].includes(person.role) ? person.role : "";
  let holder = li;
  if (person.actions.length) {
    holder = el("button", "person-button");
    holder.type = "button";
    holder.dataset.userId = person.user_id;
    holder.setAttribute("aria-haspopup", "menu");
    holder.setAttribute("aria-expanded", "false");
    holder.title = `Moderate ${person.label}`;
    li.append(holder);
  }
  holder.append(dot, el("span", "person-name", text));
  if (role) holder.append(el("span", "person-role", role === "moderator" ? "mod" : role));
  if (person.user_id) li.dataset.userId = person.user_id;
  return li;
}
