// The menu on a message: "Edit" (your own, within the edit window) opens an editor in place
// of its text, "Delete" (your own, or anyone's for the room's moderators) asks first. The
// server decides; a refusal is shown in words where it was asked for.
import { identity } from "./identity.js";
import { charCount } from "./limits.js";
import { messageActions } from "./permissions.js";
import { el, newClientId } from "./util.js";

export class MessageActions {
  /** `rooms`: Rooms; `menu`: PopupMenu; `ask`: AskDialog; `limits()`: the server's limits. */
  constructor(ui, { rooms, menu, ask, limits }) {
    this.rooms = rooms;
    this.menu = menu;
    this.ask = ask;
    this.limits = limits;
    ui.scroller.addEventListener("click", (event) => {
      const button = event.target.closest(".msg-menu");
      if (button) this.#open(button);
    });
  }

  #open(button) {
    const room = this.rooms.current;
    const node = button.closest(".msg");
    const entry = room && node && room.view.timeline.byId.get(node.dataset.id);
    if (!entry) return;
    const allowed = messageActions({
      own: entry.own, deleted: entry.deleted, sentAt: entry.time,
      editMinutes: this.limits().edit_minutes, role: room.standing.role, admin: identity.admin,
    });
    const items = [];
    if (allowed.includes("edit")) {
      items.push({ label: "Edit", run: () => this.edit(room, entry.id) });
    }
    if (allowed.includes("delete")) {
      items.push({ label: "Delete…", danger: true, run: () => this.confirmDelete(room, entry.id) });
    }
    if (!items.length) {
      items.push({ label: "Nothing you can change here", run: () => {} });
    }
    this.menu.show(button, items, "Message actions");
  }

  /** Edit message `id` of `room` in place: Enter saves, Shift+Enter a new line, Esc cancels. */
  edit(room, id) {
    const entry = room.view.timeline.byId.get(id);
    const node = entry && room.view.nodeOf(entry);
    if (!node) return;
    const open = node.querySelector(".edit-form textarea");
    if (open) {
      open.focus();
      return;
    }
    const text = node.querySelector(".text");
    const form = el("form", "edit-form");
    const input = el("textarea", "edit-input");
    input.value = entry.text;
    input.rows = Math.min(8, entry.text.split("\n").length);
    input.setAttribute("aria-label", "Edit your message");
    const error = el("p", "form-error edit-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    const save = el("button", "button primary small", "Save");
    save.type = "submit";
    const cancel = el("button", "button ghost small", "Cancel");
    cancel.type = "button";
    const row = el("div", "edit-actions");
    row.append(el("span", "edit-hint", "Enter to save · Esc to cancel"), cancel, save);
    form.append(input, error, row);
    text.hidden = true;
    text.after(form);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);

    // One client_id for this edit, however often Save is pressed: it applies once.
    const clientId = newClientId();
    const close = () => {
      form.remove();
      text.hidden = false;
      if (node.isConnected) node.focus();
    };
    const fail = (message) => {
      error.textContent = message;
      error.hidden = !message;
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = input.value;
      if (!value.trim()) {
        fail("A message can't be empty: delete it instead.");
        return;
      }
      const max = this.limits().message_chars;
      if (charCount(value) > max) {
        fail(`That is ${charCount(value) - max} characters too many (at most ${max}).`);
        return;
      }
      if (value === entry.text) {
        close();
        return;
      }
      save.disabled = true;
      const problem = await this.rooms.editMessage(room, id, value, clientId);
      save.disabled = false;
      if (problem) {
        fail(problem);
        input.focus();
      } else if (form.isConnected) {
        close();
      }
    });
    cancel.addEventListener("click", close);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        close();
      }
    });
  }

  /** Ask, then delete message `id` of `room`. */
  confirmDelete(room, id) {
    const entry = room.view.timeline.byId.get(id);
    if (!entry || entry.deleted) return Promise.resolve();
    const whose = entry.own ? "" : `This is ${room.names.label(entry.userId, entry.user)}'s message. `;
    const clientId = newClientId();
    return this.ask.ask({
      title: "Delete this message?",
      text: `${whose}Everyone in #${room.name} will see “message deleted” in its place. ` +
        "This can't be undone.",
      confirm: "Delete",
      danger: true,
      run: () => this.rooms.deleteMessage(room, id, clientId),
    });
  }
}
