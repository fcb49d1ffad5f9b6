// A small pop-up menu (role="menu") opened from a button: on a message (Edit, Delete) or
// on a person in the online list (Mute…, Kick, moderator). It lives at the end of <body>,
// fixed in place, so no scrolling list or clipped header cuts it off. ↑ ↓ Home End move,
// Enter picks, Esc or Tab closes it and focus goes back to the button.
import { el } from "./util.js";

const GAP_PX = 4;

export class PopupMenu {
  constructor() {
    this.node = el("ul", "popup-menu");
    this.node.setAttribute("role", "menu");
    this.node.hidden = true;
    this.anchor = null;
    document.body.append(this.node);
    this.node.addEventListener("keydown", (event) => this.#keydown(event));
    document.addEventListener("pointerdown", (event) => {
      if (this.open && !this.node.contains(event.target) && !this.anchor?.contains(event.target)) {
        this.close(false);
      }
    });
    // Where it was drawn is wrong once anything scrolls or the window changes size.
    document.addEventListener("scroll", (event) => {
      if (this.open && !this.node.contains(event.target)) this.close(false);
    }, true);
    window.addEventListener("resize", () => this.close(false));
  }

  get open() {
    return !this.node.hidden;
  }

  /**
   * Show `items` ([{label, run, danger?}]) below `anchor` (above when there is no room
   * below). Opening it again from the same button closes it.
   */
  show(anchor, items, label) {
    if (this.open && this.anchor === anchor) {
      this.close();
      return;
    }
    this.close(false);
    if (!items.length) return;
    this.anchor = anchor;
    this.node.setAttribute("aria-label", label);
    this.node.replaceChildren(...items.map((item) => {
      const li = el("li");
      li.setAttribute("role", "none");
      const button = el("button", item.danger ? "menu-item danger" : "menu-item", item.label);
      button.type = "button";
      button.tabIndex = -1;
      button.setAttribute("role", "menuitem");
      button.addEventListener("click", () => {
        this.close();
        item.run();
      });
      li.append(button);
      return li;
    }));
    this.node.hidden = false;
    anchor.setAttribute("aria-expanded", "true");
    this.#place(anchor);
    this.#items()[0].focus();
  }

  /** Close; `refocus`: put focus back on the button that opened it. */
  close(refocus = true) {
    if (!this.open) return;
    this.node.hidden = true;
    const anchor = this.anchor;
    this.anchor = null;
    if (!anchor) return;
    anchor.setAttribute("aria-expanded", "false");
    if (refocus && anchor.isConnected) anchor.focus();
  }

  #items() {
    return [...this.node.querySelectorAll(".menu-item")];
  }

  #place(anchor) {
    const box = anchor.getBoundingClientRect();
    const { node } = this;
    const width = node.offsetWidth;
    const height = node.offsetHeight;
    const left = Math.min(Math.max(GAP_PX, box.right - width), window.innerWidth - width - GAP_PX);
    const below = box.bottom + GAP_PX;
    const top = below + height <= window.innerHeight ? below : Math.max(GAP_PX, box.top - height - GAP_PX);
    node.style.left = `${Math.max(GAP_PX, left)}px`;
    node.style.top = `${top}px`;
  }

  #keydown(event) {
    const items = this.#items();
    const i = items.indexOf(document.activeElement);
    let next = null;
    if (event.key === "ArrowDown") next = items[(i + 1) % items.length];
    else if (event.key === "ArrowUp") next = items[(i - 1 + items.length) % items.length];
    else if (event.key === "Home") next = items[0];
    else if (event.key === "End") next = items[items.length - 1];
    else if (event.key === "Escape" || event.key === "Tab") {
      event.preventDefault();
      event.stopPropagation();
      this.close();
      return;
    }
    if (!next) return;
    event.preventDefault();
    next.focus();
  }
}
