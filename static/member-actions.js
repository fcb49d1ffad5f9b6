// The menu on a person in the online list, for the room's owner, its moderators and
// administrators: "Mute…" (for how many minutes), "Unmute", "Kick…", and for the owner or
// an admin "Make moderator" / "Remove moderator". What happened comes back to everyone as a
// notification; a refusal is shown in words.

// docs/identities.md: muteUser takes 1..10080 minutes.
const MUTE_MINUTES = { value: 10, min: 1, max: 10_080 };

export class MemberActions {
  /** `rooms`: Rooms; `menu`: PopupMenu; `ask`: AskDialog; `toast`: Toast. */
  constructor(ui, { rooms, menu, ask, toast }) {
    this.rooms = rooms;
    this.menu = menu;
    this.ask = ask;
    this.toast = toast;
    ui.onlineList.addEventListener("click", (event) => {
      const button = event.target.closest(".person-button");
      if (button) this.#open(button);
    });
  }

  #open(button) {
    const room = this.rooms.current;
    const person = room && this.rooms.people(room).find((p) => p.user_id === button.dataset.userId);
    if (!person || !person.actions.length) return;
    const items = person.actions.map((a) => this.#item(room, person, a));
    this.menu.show(button, items, `Moderate ${person.label}`);
  }

  #item(room, person, { action, role }) {
    const who = person.label;
    const moderate = (event, extra) => this.rooms.moderate(room, event, person.user_id, extra);
    const now = async (event, extra) => {
      const problem = await moderate(event, extra);
      if (problem) this.toast.show(problem);
    };
    if (action === "mute") {
      return {
        label: "Mute…",
        run: () => this.ask.ask({
          title: `Mute ${who}?`,
          text: `${who} can't send or edit messages in #${room.name} until the mute ends.`,
          confirm: "Mute",
          minutes: MUTE_MINUTES,
          run: ({ minutes }) => moderate("muteUser", { minutes }),
        }),
      };
    }
    if (action === "unmute") return { label: "Unmute", run: () => now("muteUser", { minutes: 0 }) };
    if (action === "kick") {
      return {
        label: "Kick…",
        danger: true,
        run: () => this.ask.ask({
          title: `Kick ${who} from #${room.name}?`,
          text: `${who} leaves the room now and can't join it again for a while.`,
          confirm: "Kick",
          danger: true,
          run: () => moderate("kickUser"),
        }),
      };
    }
    return role === "moderator"
      ? { label: "Make moderator", run: () => now("setRole", { role: "moderator" }) }
      : { label: "Remove moderator", run: () => now("setRole", { role: "member" }) };
  }
}
