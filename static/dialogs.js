// The welcome / change-name dialog, the question dialog (confirm a deletion or a kick, how
// long to mute someone) and the error toast.

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

/**
 * Asks before something that cannot be undone, or for how many minutes. `ask(options)`
 * resolves once it is closed; `options.run(values)` does the thing and answers "" (done:
 * close) or why it failed (shown in the dialog, which stays open to try again).
 */
export class AskDialog {
  constructor(ui) {
    this.ui = ui;
    this.run = null;
    this.done = null;
    ui.askCancel.addEventListener("click", () => ui.ask.close());
    ui.ask.addEventListener("close", () => {
      const done = this.done;
      this.done = null;
      this.run = null;
      if (done) done();
    });
    ui.askForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!this.run) return;
      const values = {};
      if (!ui.askMinutesField.hidden) {
        const minutes = Number(ui.askMinutes.value);
        if (!Number.isInteger(minutes) || minutes < this.minMinutes || minutes > this.maxMinutes) {
          showFieldError(ui.askError,
            `Enter a whole number of minutes from ${this.minMinutes} to ${this.maxMinutes}.`);
          ui.askMinutes.focus();
          return;
        }
        values.minutes = minutes;
      }
      ui.askConfirm.disabled = true;
      let problem = "";
      try {
        problem = await this.run(values);
      } finally {
        ui.askConfirm.disabled = false;
      }
      if (problem) showFieldError(ui.askError, problem);
      else ui.ask.close();
    });
  }

  /**
   * `title`, `text`, `confirm` (the button's label), `danger` (it destroys something),
   * `minutes` ({value, min, max}: ask for a number of minutes), `run(values)`.
   */
  ask({ title, text, confirm, danger = false, minutes = null, run }) {
    const { ui } = this;
    if (ui.ask.open) ui.ask.close();
    ui.askTitle.textContent = title;
    ui.askText.textContent = text;
    ui.askConfirm.textContent = confirm;
    ui.askConfirm.classList.toggle("danger", danger);
    ui.askMinutesField.hidden = !minutes;
    if (minutes) {
      this.minMinutes = minutes.min;
      this.maxMinutes = minutes.max;
      ui.askMinutes.min = String(minutes.min);
      ui.askMinutes.max = String(minutes.max);
      ui.askMinutes.value = String(minutes.value);
    }
    showFieldError(ui.askError, "");
    this.run = run;
    return new Promise((resolve) => {
      this.done = resolve;
      ui.ask.showModal();
      (minutes ? ui.askMinutes : ui.askConfirm).focus();
    });
  }
}
