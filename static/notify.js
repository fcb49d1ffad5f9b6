// Mentions outside the page: desktop notifications (opt-in with the bell; permission is
// asked only when it is clicked) and a count in the tab title while the tab is hidden.
import { storage, truncate } from "./util.js";

export class Notifier {
  /** `open(room)` shows a room when its notification is clicked. */
  constructor(button, open) {
    this.button = button;
    this.open = open;
    this.supported = typeof window.Notification === "function";
    this.wanted = storage.get("notify", false);
    button.hidden = !this.supported;
    button.addEventListener("click", () => this.toggle());
    this.#render();
  }

  get enabled() {
    return this.supported && this.wanted && Notification.permission === "granted";
  }

  async toggle() {
    if (this.wanted && Notification.permission === "granted") {
      this.wanted = false;
    } else {
      let permission = Notification.permission;
      if (permission === "default") permission = await Notification.requestPermission();
      this.wanted = permission === "granted";
      if (permission === "denied") {
        this.#render("Notifications are blocked for this site in the browser's settings");
        return;
      }
    }
    storage.set("notify", this.wanted);
    this.#render();
  }

  /** Someone mentioned you in `room`: a notification unless you are looking at it. */
  mention(room, msg, looking) {
    if (!this.enabled || looking) return;
    const note = new Notification(`${msg.user} mentioned you in #${room.name}`, {
      body: truncate(msg.message, 180),
      tag: `chatd:${room.name}`,
    });
    note.addEventListener("click", () => {
      window.focus();
      this.open(room.name);
      note.close();
    });
  }

  #render(blocked = "") {
    const on = this.enabled;
    this.button.setAttribute("aria-pressed", String(on));
    this.button.classList.toggle("on", on);
    const label = blocked || (on
      ? "Desktop notifications for mentions are on"
      : "Notify me on the desktop when someone mentions me");
    this.button.title = label;
    this.button.setAttribute("aria-label", label);
  }
}

/** The tab title: "(@2) #room · chatd" for mentions, "(5) #room · chatd" for unread. */
export function pageTitle(current, unread, mentions) {
  const where = current ? `#${current} · chatd` : "chatd";
  if (mentions) return `(@${mentions}) ${where}`;
  if (unread) return `(${unread}) ${where}`;
  return where;
}
