// The room list: the rooms you are in (with unread counts and a leave button) and the
// other rooms on the server (GET api/rooms), with online counts and last activity, and a
// filter box once there are many. Each list is one stop for Tab; the arrow keys, Home and
// End move within it (a roving tabindex), so the message box stays a few Tabs away.
import { apiFetch } from "./identity.js";
import { relativeTime } from "./time.js";
import { debounce, el } from "./util.js";

const ROOMS_POLL_MS = 10_000;
// More rooms than this and the list gets a filter box.
export const FILTER_FROM = 8;

/** The server's room list, kept fresh by polling while the page is visible. */
export class Directory {
  constructor(onChange) {
    this.rooms = []; // [{name, created_at, last_message_at, last_seq, online}]
    this.onChange = onChange;
    this.refreshSoon = debounce(() => this.refresh(), 300);
  }

  async refresh() {
    try {
      const res = await apiFetch("api/rooms");
      if (!res.ok) return;
      const body = await res.json();
      if (Array.isArray(body.rooms)) this.rooms = body.rooms;
      this.onChange();
    } catch {
      // The banner already says when the server is unreachable.
    }
  }

  /** Poll every few seconds while `active()`; at once when the tab is shown again. */
  poll(active) {
    setInterval(() => {
      if (active() && !document.hidden) this.refresh();
    }, ROOMS_POLL_MS);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && active()) this.refresh();
    });
  }

  info(name) {
    return this.rooms.find((r) => r.name === name);
  }

  /** A message arrived: the room moves up and says "now" without waiting for a poll. */
  activity(name, timestamp) {
    const entry = this.info(name);
    if (entry) {
      if (!entry.last_message_at || entry.last_message_at < timestamp) {
        entry.last_message_at = timestamp;
      }
    } else {
      this.rooms.unshift({ name, last_message_at: timestamp, online: 0 });
    }
    this.onChange();
  }

  setOnline(name, count) {
    const entry = this.info(name);
    if (entry) entry.online = count;
  }
}

export class Sidebar {
  /** `actions`: show(name), join(name), leave(name), create(name) -> Promise<error text>. */
  constructor(ui, actions) {
    this.ui = ui;
    this.actions = actions;
    this.filterText = "";
    ui.sidebar.addEventListener("click", (event) => {
      const target = event.target.closest("[data-action]");
      if (!target) return;
      const name = target.dataset.room;
      if (target.dataset.action === "leave") actions.leave(name);
      else if (target.dataset.action === "show") actions.show(name);
      else actions.join(name);
    });
    ui.sidebar.addEventListener("keydown", (event) => this.#keydown(event));
    ui.filter.addEventListener("input", () => {
      this.filterText = ui.filter.value.trim().toLocaleLowerCase();
      this.actions.refilter();
    });
    ui.filter.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && ui.filter.value) {
        event.stopPropagation();
        ui.filter.value = "";
        this.filterText = "";
        this.actions.refilter();
      } else if (event.key === "Enter") {
        // Enter opens the first room that matches.
        event.preventDefault();
        const first = ui.sidebar.querySelector(".room-link");
        if (first) first.click();
      } else if (event.key === "ArrowDown") {
        event.preventDefault();
        ui.sidebar.querySelector(".room-link")?.focus();
      }
    });
    ui.newRoomForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = ui.newRoom.value.trim();
      this.showError("");
      const problem = await actions.create(name);
      if (problem) {
        this.showError(problem);
        return;
      }
      ui.newRoom.value = "";
    });
  }

  showError(text) {
    this.ui.newRoomError.textContent = text;
    this.ui.newRoomError.hidden = !text;
  }

  /**
   * Draw both lists. `rooms`: joined Room objects; `directory`: Directory; `current`: the
   * name shown; `connected`: false when online counts would be stale (none are shown).
   */
  render(rooms, directory, current, connected) {
    const { ui } = this;
    // Re-rendering replaces the buttons; put keyboard focus back where it was.
    const active = document.activeElement;
    const focus = active && ui.sidebar.contains(active) && active.dataset.room !== undefined
      ? { room: active.dataset.room, action: active.dataset.action } : null;
    const info = new Map(directory.rooms.map((r) => [r.name, r]));
    const others = directory.rooms.filter((r) => !rooms.has(r.name) || rooms.get(r.name).probing);
    const total = rooms.size + others.length;
    const filtering = total > FILTER_FROM;
    ui.filterField.hidden = !filtering;
    const match = (name) =>
      !filtering || !this.filterText || name.toLocaleLowerCase().includes(this.filterText);

    const joined = [...rooms].filter((room) => !room.probing && match(room.name));
    ui.joined.replaceChildren(...joined.map((room) =>
      this.#item(room.name, info.get(room.name), room, current, connected)));
    ui.noJoined.hidden = joined.length > 0;
    const searching = filtering && this.filterText;
    ui.noJoined.textContent = searching ? "No room you are in matches." : "You are not in any room yet.";

    const shown = others.filter((r) => match(r.name));
    ui.others.replaceChildren(...shown.map((r) => this.#item(r.name, r, null, current, connected)));
    ui.noOthers.hidden = shown.length > 0;
    ui.noOthers.textContent = searching ? "No other room matches." : "No other rooms yet.";

    for (const list of [ui.joined, ui.others]) this.#rove(list, list.querySelector(".active"));
    if (focus) {
      for (const node of ui.sidebar.querySelectorAll("[data-room]")) {
        if (node.dataset.room === focus.room && node.dataset.action === focus.action) {
          this.#rove(node.closest(".room-list"), node.closest(".room-item").querySelector(".room-link"));
          node.focus();
          break;
        }
      }
    }
  }

  #item(name, info, room, current, connected) {
    const li = el("li", "room-item");
    const link = el("button", "room-link");
    link.type = "button";
    link.dataset.room = name;
    link.dataset.action = room ? "show" : "join";
    if (room && name === current) {
      link.classList.add("active");
      link.setAttribute("aria-current", "true");
    }
    const hash = el("span", "room-hash", "#");
    hash.setAttribute("aria-hidden", "true");
    const text = el("span", "room-text");
    text.append(el("span", "room-name", name));
    const meta = el("span", "room-meta");
    if (connected) {
      const online = room && room.member.live ? room.presence.count : (info && info.online) || 0;
      meta.append(el("span", online ? "room-online-count is-online" : "room-online-count",
        `${online} online`));
    } else {
      meta.append(el("span", "room-online-count unknown", "offline"));
    }
    if (info && info.last_message_at) {
      const when = el("time", "room-when", relativeTime(new Date(info.last_message_at)));
      when.dateTime = info.last_message_at;
      meta.append(" · ", when);
    }
    text.append(meta);
    link.append(hash, text);
    if (room && room.unread.count) {
      const n = room.unread.count;
      const badge = el("span", room.unread.mentions ? "badge mention" : "badge",
        n > 99 ? "99+" : String(n));
      badge.setAttribute("aria-label", room.unread.mentions
        ? `${n} unread, ${room.unread.mentions} mentioning you` : `${n} unread`);
      link.append(badge);
    }
    li.append(link);
    if (room) {
      const leave = el("button", "leave", "×");
      leave.type = "button";
      leave.tabIndex = -1;
      leave.dataset.room = name;
      leave.dataset.action = "leave";
      leave.title = "Leave room";
      leave.setAttribute("aria-label", `Leave ${name}`);
      li.append(leave);
    }
    return li;
  }

  /** Make `link` (or the list's first) the one room of `list` that Tab stops at. */
  #rove(list, link) {
    const links = list.querySelectorAll(".room-link");
    const chosen = link || links[0];
    for (const node of links) node.tabIndex = node === chosen ? 0 : -1;
  }

  #keydown(event) {
    const target = event.target;
    if (!target.dataset || target.dataset.room === undefined) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const list = target.closest(".room-list");
    const links = [...list.querySelectorAll(".room-link")];
    const row = target.closest(".room-item");
    let next = null;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const i = links.indexOf(row.querySelector(".room-link"));
      next = links[Math.max(0, Math.min(links.length - 1, i + (event.key === "ArrowDown" ? 1 : -1)))];
      // From the end of one list on to the next one.
      if (event.key === "ArrowDown" && i === links.length - 1 && list === this.ui.joined) {
        next = this.ui.others.querySelector(".room-link[tabindex='0']") || next;
      } else if (event.key === "ArrowUp" && i === 0 && list === this.ui.others) {
        next = this.ui.joined.querySelector(".room-link[tabindex='0']") || next;
      }
    } else if (event.key === "Home") {
      next = links[0];
    } else if (event.key === "End") {
      next = links[links.length - 1];
    } else if (event.key === "ArrowRight" && target.classList.contains("room-link")) {
      next = row.querySelector(".leave");
    } else if (event.key === "ArrowLeft" && target.classList.contains("leave")) {
      next = row.querySelector(".room-link");
    } else if (event.key === "Delete" && row.querySelector(".leave")) {
      event.preventDefault();
      this.actions.leave(target.dataset.room);
      return;
    }
    if (!next) return;
    event.preventDefault();
    if (next.classList.contains("room-link")) this.#rove(next.closest(".room-list"), next);
    next.focus();
  }
}
