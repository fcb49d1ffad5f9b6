// The welcome / change-name dialog and the error toast.

const TOAST_MS = 8_000;

export class Toast {
  constructor(ui) {
    this.ui = ui;
    this.timer = 0;
    ui.toastClose.addEventListener("click", () => this.hide());
  }

  show(text) {
    this.ui.toastText.textContent = text;
    this.ui.toast.hidden = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), TOAST_MS);
  }

  hide() {
    this.ui.toast.hidden = true;
  }
}

export function showFieldError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

/**
 * Asks for a name (and, the first time, a room). `submit({name, room, first})` answers
 * the problem to show, or "" to close the dialog.
 */
export class WelcomeDialog {
  constructor(ui, submit) {
    this.ui = ui;
    this.first = true;
    this.required = true;
    ui.welcome.addEventListener("cancel", (event) => {
      // Nothing to go back to before a name the server accepts.
      if (this.required) event.preventDefault();
    });
    ui.welcomeCancel.addEventListener("click", () => ui.welcome.close());
    ui.welcomeForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const request = {
        name: ui.welcomeName.value.trim(),
        room: ui.welcomeRoom.value.trim(),
        first: this.first,
      };
      ui.welcomeSubmit.disabled = true;
      let problem = "";
      try {
        problem = await submit(request);
      } finally {
        ui.welcomeSubmit.disabled = false;
      }
      if (problem) {
        showFieldError(ui.welcomeError, problem);
        ui.welcomeName.focus();
      } else if (ui.welcome.open) {
        ui.welcome.close();
      }
    });
  }

  get open() {
    return this.ui.welcome.open;
  }

  setRule(text) {
    this.ui.welcomeNameHelp.textContent = text;
  }

  /**
   * `first`: also ask for a room; `required`: no way out without a name (first visit, or
   * the server refused the current one); `error`: why we ask again.
   */
  show({ first, required, name, room, error = "" }) {
    const { ui } = this;
    this.first = first;
    this.required = required;
    ui.welcomeTitle.textContent = first ? "Welcome to chatd" : "Change your name";
    ui.welcomeIntro.textContent = first
      ? "Pick a name and a room to start chatting."
      : "Others see this name next to your messages.";
    ui.welcomeRoomField.hidden = !first;
    ui.welcomeCancel.hidden = required;
    ui.welcomeSubmit.textContent = first ? "Start chatting" : "Save";
    if (!ui.welcome.open) {
      ui.welcomeName.value = name;
      ui.welcomeRoom.value = room;
      ui.welcome.showModal();
    }
    showFieldError(ui.welcomeError, error);
    ui.welcomeName.focus();
  }

  close() {
    if (this.ui.welcome.open) this.ui.welcome.close();
  }
}
