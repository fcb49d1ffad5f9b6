// The message box: Enter sends, Shift+Enter starts a new line; a counter appears as the
// text nears the server's limit, and a message over it is kept in the box, not sent.
import { counter } from "./limits.js";
import { truncate } from "./util.js";

// A long room name would wrap the placeholder over several lines on a phone.
const PLACEHOLDER_ROOM_CHARS = 24;

export class Composer {
  /** `send(text)` queues the message; `typed(nonEmpty)` after every change. */
  constructor(ui, { send, typed }) {
    this.ui = ui;
    this.maxChars = 2000;
    this.sendFn = send;
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
      ui.input.focus();
    });
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    ui.input.addEventListener("input", () => {
      this.update();
      typed(Boolean(ui.input.value.trim()));
    });
  }

  setLimit(maxChars) {
    this.maxChars = maxChars;
    this.update();
  }

  /** Enable for `room` (a name), or disable with no room, or saying why (`blocked`). */
  setRoom(name, blocked = "") {
    const { ui } = this;
    ui.input.disabled = !name || Boolean(blocked);
    ui.send.disabled = ui.input.disabled;
    if (name && blocked) {
      ui.input.placeholder = blocked;
      ui.messageLabel.textContent = `Message #${name}: ${blocked}`;
    } else if (name) {
      ui.input.placeholder = `Message #${truncate(name, PLACEHOLDER_ROOM_CHARS)}`;
      ui.messageLabel.textContent = `Message #${name}`;
    } else {
      ui.input.placeholder = "Join a room to chat";
      ui.messageLabel.textContent = "Message";
    }
  }

  focus() {
    this.ui.input.focus();
  }

  /** Counter and validity for the text as it is now. */
  update() {
    const { ui } = this;
    const state = counter(ui.input.value, this.maxChars);
    ui.counter.hidden = !state.shown && !state.over;
    ui.counter.textContent = state.label;
    ui.counter.classList.toggle("over", state.over);
    if (state.over) ui.input.setAttribute("aria-invalid", "true");
    else ui.input.removeAttribute("aria-invalid");
    return state;
  }

  submit() {
    const { ui } = this;
    const text = ui.input.value;
    if (!text.trim()) return;
    const state = this.update();
    if (state.over) {
      ui.counter.textContent = `${state.label}: shorten the message to send it`;
      ui.composerStatus.textContent = `Not sent: ${ui.counter.textContent}.`;
      ui.counter.classList.remove("shake");
      // Restart the animation so every refused Enter is seen.
      void ui.counter.offsetWidth;
      ui.counter.classList.add("shake");
      return;
    }
    ui.composerStatus.textContent = "";
    if (this.sendFn(text)) {
      ui.input.value = "";
      this.update();
    }
  }
}
