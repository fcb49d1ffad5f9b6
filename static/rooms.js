// Joined rooms and everything that keeps their messages complete: joining (again, with the
// last seq seen, after a reconnect), history, older pages, filling seq gaps over REST,
// live messages and their edits and deletions (which take seqs of their own), presence,
// typing, unread counts, and the send path (outbox.js) that loses nothing: pending until
// acked, retried with the same client_id, never shown twice. Also what one may do in a
// room: edit, delete, moderate, and being muted or removed from it (docs/identities.md).
import { apiFetch, identity } from "./identity.js";
import { Outbox } from "./outbox.js";
import { RoomView } from "./render.js";
import { mentions } from "./mentions.js";
import { Namebook, membersOf } from "./names.js";
import { memberActions, moderates as roleModerates } from "./permissions.js";
import { explain, whenText } from "./refusals.js";
import { storage } from "./util.js";

const TYPING_EXPIRE_MS = 3_000; // someone we hear nothing more from stops "typing" after this
const TYPING_IDLE_MS = 2_000; // we send typing:false after this long without a keystroke
const TYPING_REFRESH_MS = 2_000; // while typing, repeat typing:true so others' expiry holds
const PAGE_SIZE = 50;
const GAP_PAGE_SIZE = 200; // REST maximum (http.py PAGE_MAX)
// Worth retrying with the same client_id: the server said "not now", not "never".
const RETRYABLE = new Set(["rate_limited", "unavailable", "internal"]);
// Refusals the client words itself (refusals.js); for the others the server's words serve.
const EXPLAINED = new Set([
  "forbidden", "muted", "kicked", "unauthorized", "not_found", "not_joined",
]);
const KICK_FALLBACK_MS = 10 * 60_000; // limits.kick_minutes, should `until` be missing

/** Whether the room is joined on the current connection. */
class Membership {
  constructor() {
    this.live = false;
    this.joining = false;
    this.gen = 0; // which join attempt an ack answers
  }

  begin() {
    this.joining = true;
    this.gen += 1;
    return this.gen;
  }

  /** The connection dropped: not joined, and any join on its way is void. */
  lost() {
    this.live = false;
    this.joining = false;
    this.gen += 1;
  }
}

/** Which messages the room has: every seq from the first shown up to `synced`. */
class History {
  constructor() {
    this.loaded = false; // got its first history
    this.synced = 0;
    this.gapTarget = 0;
    this.filling = false;
    this.hasOlder = false;
    this.loadingOlder = false;
    this.olderError = false;
  }

  advance(timeline) {
    this.synced = timeline.contiguousFrom(this.synced);
  }
}

/** Who is online in the room (one entry per identity) and who is typing there. */
class Presence {
  constructor() {
    this.members = []; // [{user_id, name, role}], sorted by name then user id
    this.users = []; // their distinct names, for @mentions
    this.typers = new Map(); // user_id (or name) -> {label, timer}
  }

  set(members) {
    this.members = members;
    this.users = [...new Set(members.map((m) => m.name))];
  }

  get count() {
    return this.members.length;
  }

  typing() {
    return [...this.typers.values()].map((t) => t.label);
  }

  startTyping(key, label, expired) {
    clearTimeout(this.typers.get(key)?.timer);
    this.typers.set(key, {
      label,
      timer: setTimeout(() => {
        this.typers.delete(key);
        expired();
      }, TYPING_EXPIRE_MS),
    });
  }

  stopTyping(key) {
    clearTimeout(this.typers.get(key)?.timer);
    return this.typers.delete(key);
  }

  clearTyping() {
    for (const typer of this.typers.values()) clearTimeout(typer.timer);
    this.typers.clear();
  }
}

/** Who typed or wrote something: the identity, or the name for a server without them. */
const personKey = (data) => data.user_id || data.user;

/** What this identity may do in the room, and whether it was removed from it. */
class Standing {
  constructor() {
    this.role = "member"; // owner | moderator | member | admin (join ack, presence)
    this.kickedUntil = 0; // ms; the room refuses to be joined again until then
    this.kickedBy = "";
    this.rejoin = 0; // timer: join again when the kick ends
    this.mutes = new Map(); // user_id -> ms: mutes this page saw announced in the room
  }

  get kicked() {
    return this.kickedUntil > Date.now();
  }

  mutedUntil(userId) {
    const until = this.mutes.get(userId) || 0;
    return until > Date.now() ? until : 0;
  }
}

/** Our own "is typing" signal for the room. */
class TypingSignal {
  constructor() {
    this.sent = false;
    this.sentAt = 0;
    this.idle = 0;
  }
}

/** Messages that came while the reader was elsewhere, and where they stopped reading. */
class Unread {
  constructor() {
    this.count = 0;
    this.mentions = 0;
    this.readUpTo = 0; // the newest seq the reader had when they left the room
  }

  add(mentioned) {
    this.count += 1;
    if (mentioned) this.mentions += 1;
  }

  /** Read: returns whether there was anything unread. */
  clear() {
    const had = this.count > 0;
    this.count = 0;
    this.mentions = 0;
    return had;
  }
}

export class Room {
  constructor(name, context) {
    this.name = name;
    this.view = new RoomView(name, context);
    this.member = new Membership();
    this.history = new History();
    this.presence = new Presence();
    this.typing = new TypingSignal();
    this.unread = new Unread();
    this.names = new Namebook(); // who goes by which name here, to tell namesakes apart
    this.standing = new Standing();
    this.outbox = new Outbox();
    this.scroll = null; // saved scrollTop while another room is shown; null = at the bottom
    this.probing = false; // asked for, not yet accepted by the server
  }
}

/**
 * The rooms this page has joined. `hooks` connect it to the rest of the page: pane (the
 * RoomPane), changed() (room list and title), joined(room), activity(name, timestamp),
 * presence(name, count), roomsChanged(), mention(room, msg), nameRefused(message),
 * error(text), session() (who this page is became known or changed) and limits() (the
 * server's limits: the edit window).
 */
export class Rooms {
  constructor(conn, me, hooks) {
    this.conn = conn;
    this.me = me; // () => the user name
    this.hooks = hooks;
    this.rooms = new Map(); // by name, in the order they were joined
    this.currentName = null;
    conn.on("session", (data) => this.#session(data));
    conn.on("chat-history", (messages) => {
      if (!Array.isArray(messages)) return;
      for (const msg of messages) this.#receive(msg, "history");
    });
    conn.on("chatMessage", (msg) => this.#receive(msg, "live"));
    conn.on("messageEdited", (change) => this.#receive(change, "live"));
    conn.on("messageDeleted", (change) => this.#receive(change, "live"));
    conn.on("typing", (data) => this.#typing(data));
    conn.on("presence", (data) => this.#presence(data));
    conn.on("notification", (note) => this.#notification(note));
    conn.on("kicked", (data) => this.#kicked(data));
    // The server could not fill what this connection missed of a room: ask for it again.
    conn.on("resync", (data) => {
      const room = data && this.rooms.get(data.room);
      if (room && room.member.live) this.#join(room);
    });
    conn.onStatus((status, changed) => {
      if (!changed) return;
      if (status === "online") this.#connected();
      else this.#disconnected();
    });
  }

  get current() {
    return this.rooms.get(this.currentName) || null;
  }

  get(name) {
    return this.rooms.get(name);
  }

  has(name) {
    return this.rooms.has(name);
  }

  [Symbol.iterator]() {
    return this.rooms.values();
  }

  get size() {
    return this.rooms.size;
  }

  /** Add a room (joining it when connected) without showing it. */
  add(name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(name, () => this.#context(room));
      this.rooms.set(name, room);
      this.#join(room);
    }
    return room;
  }

  /** Join if needed, and show. */
  enter(name) {
    const room = this.add(name);
    this.show(name);
    return room;
  }

  /**
   * Join a room the user asked for and show it once the server accepts; answers "" or
   * the server's reason for refusing (the room is then not added). Offline, the room is
   * added at once and joined when the connection is back.
   */
  async open(name) {
    if (this.rooms.get(name)?.probing) return ""; // asked twice: the first answer shows it
    if (this.rooms.has(name) || !this.conn.connected) {
      this.enter(name);
      return "";
    }
    const room = new Room(name, () => this.#context(room));
    room.probing = true; // in the map for its history, not in the list until accepted
    this.rooms.set(name, room);
    const error = await this.#join(room);
    if (this.rooms.get(name) !== room) return "";
    room.probing = false;
    if (error && !RETRYABLE.has(error.code)) {
      this.rooms.delete(name);
      return error.field === "username"
        ? `The server refused the name “${this.me()}”: ${error.message}`
        : `Couldn't join “${name}”: ${this.#reason(error, "join")}`;
    }
    this.show(name);
    return "";
  }

  /** Join every room not joined yet (after the server refused a name that is now changed). */
  joinAll() {
    for (const room of this.rooms.values()) if (!room.member.live) this.#join(room);
  }

  show(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    const prev = this.current;
    const pane = this.hooks.pane;
    if (prev && prev !== room) {
      pane.hide();
      this.stopTyping(prev);
      prev.unread.readUpTo = prev.view.maxSeq;
      prev.view.markUnreadAfter(null);
    }
    this.currentName = name;
    const hadUnread = room.unread.clear();
    pane.show(room);
    const divider = hadUnread ? room.view.markUnreadAfter(room.unread.readUpTo) : null;
    if (divider && prev !== room) pane.reveal(divider);
    this.#renderPane(room);
    this.save();
    this.hooks.changed();
    this.#fillViewport(room);
  }

  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.stopTyping(room);
    if (room.member.live) this.conn.send("leaveRoom", { room: name });
    room.presence.clearTyping();
    room.outbox.close();
    clearTimeout(room.standing.rejoin);
    this.rooms.delete(name);
    this.saveOutbox();
    if (this.currentName === name) {
      const next = this.rooms.keys().next();
      this.currentName = null;
      if (next.done) this.hooks.pane.showEmpty();
      else this.show(next.value);
    }
    this.save();
    this.hooks.changed();
  }

  save() {
    storage.set("rooms", [...this.rooms.keys()]);
    storage.set("current", this.currentName);
  }

  /** The reader came back to the tab: what arrived meanwhile in this room is read now. */
  seen() {
    const room = this.current;
    if (!room || !room.unread.count) return;
    room.unread.clear();
    const divider = room.view.markUnreadAfter(room.unread.readUpTo);
    if (divider && !this.hooks.pane.nearBottom()) this.hooks.pane.reveal(divider);
    this.hooks.changed();
  }

  /** The tab was hidden: remember where the reader was. */
  away() {
    const room = this.current;
    if (room && !room.unread.count) {
      room.unread.readUpTo = room.view.maxSeq;
      room.view.markUnreadAfter(null);
    }
  }

  // ------------------------------------------------------------ joining and history

  #context(room) {
    const me = this.me();
    return {
      me,
      names: room ? room.presence.users : [],
      label: (userId, name) => (room ? room.names.label(userId, name) : name),
    };
  }

  #mine(msg) {
    return identity.owns(msg, this.me());
  }

  /** The server's `session`: who this page is. Own messages and rights follow the identity. */
  #session(data) {
    identity.session(data);
    for (const room of this.rooms.values()) {
      room.view.reown((msg) => this.#mine(msg));
      room.view.setModerating(this.moderates(room));
    }
    this.hooks.session();
    this.renderCurrent();
  }

  /** A refusal in words: the client's own for what it knows about, else the server's. */
  #reason(error, action) {
    const code = error && error.code;
    if (EXPLAINED.has(code) || !error || !error.message) {
      return explain(error, action, { editMinutes: this.hooks.limits().edit_minutes });
    }
    return error.message;
  }

  /** Join `room` on this connection; resolves to the refusal, if it was refused. */
  async #join(room) {
    if (!this.conn.connected || room.member.joining) return null;
    if (room.standing.kicked) {
      return { code: "kicked", until: new Date(room.standing.kickedUntil).toISOString() };
    }
    const gen = room.member.begin();
    const payload = { username: this.me(), room: room.name };
    // A re-join after a reconnect asks only for what it missed.
    if (room.history.loaded) payload.since = room.history.synced;
    const ack = await this.conn.request("joinRoom", payload);
    if (gen !== room.member.gen || this.rooms.get(room.name) !== room) return null;
    room.member.joining = false;
    if (!ack) {
      // Timed out while connected: try again. A disconnect re-joins on "connect".
      if (this.conn.connected) setTimeout(() => this.#join(room), 1_000);
      return null;
    }
    if (!ack.ok) {
      const error = ack.error || {};
      if (RETRYABLE.has(error.code)) setTimeout(() => this.#join(room), 3_000);
      else if (error.code === "kicked" && !room.probing) this.#removed(room, error.until, "");
      else if (!room.probing) this.#joinRefused(room, error);
      return error;
    }
    this.#joined(room, ack);
    return null;
  }

  #joinRefused(room, error) {
    if (error.field === "username") {
      // Which names are allowed is the server's rule: show its words and ask for another.
      this.hooks.nameRefused(error.message);
      return;
    }
    this.hooks.error(`Couldn't join “${room.name}”: ${this.#reason(error, "join")}`);
    if (!room.history.loaded) this.leave(room.name);
  }

  #joined(room, ack) {
    room.member.live = true;
    room.standing.role = typeof ack.role === "string" ? ack.role : "member";
    room.standing.kickedUntil = 0;
    this.#setMembers(room, membersOf(ack));
    room.view.setModerating(this.moderates(room));
    const first = !room.history.loaded;
    if (first) {
      room.history.loaded = true;
      room.history.hasOlder = Boolean(ack.has_more);
      room.history.synced = room.view.maxSeq; // the first history is contiguous
      room.unread.readUpTo = room.view.maxSeq;
    }
    room.history.advance(room.view.timeline);
    if (room.history.synced < ack.last_seq) this.#fillGap(room, ack.last_seq);
    if (room === this.current) {
      if (first) {
        this.hooks.pane.scrollToBottom();
        this.#fillViewport(room);
      }
    }
    this.#renderPane(room);
    this.hooks.changed();
    this.hooks.joined(room);
    this.#pump(room);
  }

  /**
   * Everything that shows a confirmed message, or changes one, goes through here. `into`:
   * the room a REST page is of (its entries may leave `room` out).
   */
  #receive(msg, source, into = null) {
    if (!msg || typeof msg !== "object") return;
    const room = into || this.rooms.get(msg.room);
    if (!room) return;
    if (msg.type === "edit" || msg.type === "delete") {
      this.#change(room, msg, source);
      return;
    }
    const me = this.me();
    const own = this.#mine(msg);
    const fresh = source === "live" || source === "fill" ||
      (source === "history" && room.history.loaded);
    const isCurrent = room === this.current;
    const pane = this.hooks.pane;
    const stick = isCurrent && (pane.nearBottom() || (fresh && own));
    const node = this.#show(room, msg, own);
    if (!node) return;
    if (room.view.count === 1) this.#renderEdge(room);
    if (source === "older") return;
    if (fresh && !msg.deleted) {
      if (room.presence.stopTyping(personKey(msg)) && isCurrent) pane.renderTyping();
      this.hooks.activity(room.name, msg.timestamp);
      if (!own) {
        const mentioned = typeof msg.message === "string" && mentions(msg.message, me);
        if (!isCurrent || document.hidden) {
          room.unread.add(mentioned);
          this.hooks.changed();
        }
        if (mentioned) this.hooks.mention(room, msg);
      }
      if (isCurrent && !stick) pane.showJump();
    }
    room.history.advance(room.view.timeline);
    if (source === "live") this.#checkGap(room);
    if (stick) pane.scrollToBottom();
  }

  /**
   * An edit or a deletion. It has a seq of its own in the room's order, so it counts as
   * seen (no gap) even when the message it changes is not loaded.
   */
  #change(room, change, source) {
    const stick = room === this.current && this.hooks.pane.nearBottom();
    room.view.applyChange(change);
    if (source === "older") return;
    room.history.advance(room.view.timeline);
    if (source === "live") this.#checkGap(room);
    if (stick) this.hooks.pane.scrollToBottom();
  }

  /** A seq beyond the next one means live events were missed: fetch them over REST. */
  #checkGap(room) {
    if (room.member.live && !room.member.joining && room.view.maxSeq > room.history.synced) {
      this.#fillGap(room, room.view.maxSeq);
    }
  }

  #show(room, msg, own) {
    // A second "sam" in the room: the first one's messages get their tag too.
    if (room.names.learn(msg.user_id, msg.user)) {
      room.view.relabel();
      if (room === this.current) this.#renderHeader(room);
    }
    const pending = msg.client_id ? room.outbox.get(msg.client_id) : undefined;
    if (pending) {
      room.outbox.finish(pending.clientId);
      this.saveOutbox();
      return room.view.settle(pending.clientId, msg);
    }
    return room.view.insert(msg, own);
  }

  async #fillGap(room, target) {
    const { history } = room;
    history.gapTarget = Math.max(history.gapTarget, target);
    if (history.filling) return;
    history.filling = true;
    try {
      while (history.synced < history.gapTarget && this.rooms.get(room.name) === room) {
        const goal = history.gapTarget;
        const page = await fetchMessages(room.name, `after=${history.synced}&limit=${GAP_PAGE_SIZE}`);
        for (const msg of page.messages) this.#receive(msg, "fill", room);
        const last = page.messages.length ? page.messages[page.messages.length - 1].seq : 0;
        // Without has_more, everything that exists up to `goal` is here now; a seq the
        // server assigned but never stored stays a hole, so skip over it.
        history.synced = Math.max(history.synced, last, page.has_more ? 0 : goal);
        history.advance(room.view.timeline);
      }
    } catch {
      // Offline or the server is busy: the next re-join asks with since=synced anyway.
      if (this.conn.connected) setTimeout(() => this.#fillGap(room, history.gapTarget), 3_000);
    } finally {
      history.filling = false;
    }
  }

  async loadOlder(room) {
    const { history } = room;
    if (history.loadingOlder || !history.hasOlder || !history.loaded) return;
    history.loadingOlder = true;
    history.olderError = false;
    this.#renderEdge(room);
    try {
      const page = await fetchMessages(room.name, `before=${room.view.minSeq}&limit=${PAGE_SIZE}`);
      const add = () => {
        // Newest first: each one is then older than everything shown and goes on top.
        for (let i = page.messages.length - 1; i >= 0; i--) {
          this.#receive(page.messages[i], "older", room);
        }
      };
      if (room === this.current) this.hooks.pane.keepPlace(add);
      else add();
      history.hasOlder = Boolean(page.has_more);
    } catch {
      history.olderError = true;
    } finally {
      history.loadingOlder = false;
      this.#renderEdge(room);
    }
    if (!history.olderError) this.#fillViewport(room);
  }

  /** Load older pages until the list can scroll (a tall window shows more than one page). */
  #fillViewport(room) {
    if (room !== this.current || !room.history.hasOlder) return;
    if (this.hooks.pane.hasRoomAbove()) this.loadOlder(room);
  }

  #renderEdge(room) {
    this.hooks.pane.renderEdge(room, (r) => this.loadOlder(r));
  }

  /** Header, typing line and edge of the room, when it is the one on screen. */
  #renderPane(room) {
    this.#renderEdge(room);
    if (room !== this.current) return;
    this.#renderHeader(room);
    this.hooks.pane.renderTyping();
  }

  #renderHeader(room) {
    if (room === this.current) this.hooks.pane.renderHeader(this.people(room), this.conn.connected);
  }

  /**
   * Who is online in `room`, as the header shows them: each with the label that tells
   * namesakes apart, whether it is you, and what you may do to them.
   */
  people(room) {
    const me = { userId: identity.userId, role: room.standing.role, admin: identity.admin };
    return room.presence.members.map((member) => ({
      ...member,
      label: room.names.label(member.user_id, member.name),
      you: member.user_id && identity.userId
        ? member.user_id === identity.userId : member.name === this.me(),
      actions: memberActions(me, member, room.standing.mutedUntil(member.user_id) > 0),
    }));
  }

  /** Whether this identity moderates `room` (its owner, a moderator, or an admin). */
  moderates(room) {
    return roleModerates(room.standing.role, identity.admin);
  }

  /** Why nothing can be sent in `room` now (removed from it), or "". */
  blockedReason(room) {
    if (!room || !room.standing.kicked) return "";
    const until = whenText(new Date(room.standing.kickedUntil).toISOString());
    return `You were removed from #${room.name}; you can join it again at ${until}`;
  }

  renderCurrent() {
    if (this.current) this.#renderPane(this.current);
  }

  // ------------------------------------------------------------ sending

  /** Queue `text` in the current room; it is sent as soon as the room is joined. */
  send(text, clientId) {
    const room = this.current;
    if (!room) return false;
    this.stopTyping(room);
    this.#queue(room, text, clientId);
    this.saveOutbox();
    this.hooks.pane.scrollToBottom();
    this.#pump(room);
    return true;
  }

  #queue(room, text, clientId) {
    const pending = room.outbox.add(text, clientId);
    room.view.addPending(text, this.me(), clientId);
    this.#renderPending(room, pending);
    return pending;
  }

  /** Send the room's queued messages one at a time, oldest first, while it is joined. */
  #pump(room) {
    const { outbox } = room;
    if (!this.conn.connected || !room.member.live) {
      for (const p of outbox) this.#renderPending(room, p);
      return;
    }
    const pending = outbox.next();
    if (!pending) return;
    const gen = outbox.begin(pending);
    this.#renderPending(room, pending);
    const payload = { room: room.name, message: pending.text, client_id: pending.clientId };
    this.conn.request("chatMessage", payload).then((ack) => {
      if (!outbox.answered(pending, gen)) return;
      if (pending.done) {
        this.#pump(room);
        return;
      }
      const wake = () => this.#pump(room);
      if (!ack) {
        // No ack (timeout or disconnect): it may or may not be stored. Sending again with
        // the same client_id is safe, the server answers with the stored message.
        outbox.requeue(pending, this.conn.connected ? 1_000 : 0, wake);
      } else if (ack.ok) {
        this.#show(room, {
          id: ack.id, seq: ack.seq, timestamp: ack.timestamp, room: room.name,
          user: this.me(), user_id: identity.userId || undefined, message: pending.text,
          client_id: pending.clientId,
        }, true);
        room.history.advance(room.view.timeline);
        if (room.view.maxSeq > room.history.synced && room.member.live) {
          this.#fillGap(room, room.view.maxSeq);
        }
      } else if (ack.error.code === "not_joined") {
        outbox.requeue(pending, 0, wake);
        room.member.live = false;
        this.#join(room);
      } else if (RETRYABLE.has(ack.error.code)) {
        outbox.requeue(pending, outbox.backoff(pending), wake);
      } else {
        outbox.fail(pending, this.#reason(ack.error, "send"));
      }
      this.#renderPending(room, pending);
      this.#pump(room);
    });
  }

  #renderPending(room, pending) {
    if (pending.done) return;
    const node = room.view.pendingNode(pending.clientId);
    if (!node) return;
    let status = node.querySelector(".status");
    if (!status) {
      status = document.createElement("span");
      status.className = "status";
      node.append(status);
    }
    node.classList.toggle("failed", pending.state === "failed");
    node.querySelector(".actions")?.remove();
    if (pending.state === "failed") {
      status.textContent = `Not sent: ${pending.error}`;
      const actions = document.createElement("span");
      actions.className = "actions";
      const retry = button("Retry", () => {
        room.outbox.requeue(pending, 0);
        this.#renderPending(room, pending);
        this.#pump(room);
      });
      const discard = button("Discard", () => {
        room.outbox.finish(pending.clientId);
        room.view.discardPending(pending.clientId);
        this.saveOutbox();
      });
      actions.append(retry, discard);
      node.append(actions);
    } else if (pending.state === "sending") {
      status.textContent = "Sending…";
    } else {
      status.textContent = this.conn.connected ? "Queued" : "Waiting for connection…";
    }
  }

  /** Messages not yet acked survive a reload: they are sent again with the same client_id. */
  saveOutbox() {
    const messages = [];
    for (const room of this.rooms.values()) {
      for (const m of room.outbox.snapshot()) messages.push({ room: room.name, ...m });
    }
    storage.set("outbox", { user: this.me(), messages });
  }

  restoreOutbox() {
    const saved = storage.get("outbox", null);
    if (!saved || saved.user !== this.me() || !Array.isArray(saved.messages)) return;
    for (const m of saved.messages) {
      const room = this.rooms.get(m.room);
      if (room && typeof m.text === "string" && typeof m.client_id === "string") {
        this.#queue(room, m.text, m.client_id);
      }
    }
  }

  // ------------------------------------------------------------ typing and presence

  /** A keystroke in the composer. */
  typed(nonEmpty) {
    const room = this.current;
    if (!room) return;
    if (!nonEmpty) {
      this.stopTyping(room);
      return;
    }
    const { typing } = room;
    if (!typing.sent || Date.now() - typing.sentAt > TYPING_REFRESH_MS) this.#emitTyping(room, true);
    clearTimeout(typing.idle);
    typing.idle = setTimeout(() => this.stopTyping(room), TYPING_IDLE_MS);
  }

  stopTyping(room) {
    clearTimeout(room.typing.idle);
    if (room.typing.sent) this.#emitTyping(room, false);
  }

  #emitTyping(room, typing) {
    room.typing.sent = typing;
    room.typing.sentAt = Date.now();
    if (room.member.live) this.conn.send("typing", { room: room.name, typing });
  }

  #typing(data) {
    const room = this.rooms.get(data && data.room);
    // Your own typing, from another tab of yours, is not news to you.
    if (!room || typeof data.user !== "string" || this.#mine(data)) return;
    const redraw = () => {
      if (room === this.current) this.hooks.pane.renderTyping();
    };
    const key = personKey(data);
    if (data.typing) {
      room.presence.startTyping(key, room.names.label(data.user_id, data.user), redraw);
    } else {
      room.presence.stopTyping(key);
    }
    redraw();
  }

  #presence(data) {
    const room = this.rooms.get(data && data.room);
    if (!room || !(Array.isArray(data.users) || Array.isArray(data.members))) return;
    this.#setMembers(room, membersOf(data));
    this.hooks.presence(room.name, room.presence.count);
    this.#renderHeader(room);
    this.hooks.changed();
  }

  /** Who is online; learns their names (to tell namesakes apart) and your own role. */
  #setMembers(room, members) {
    room.presence.set(members);
    let relabel = false;
    for (const member of members) {
      if (room.names.learn(member.user_id, member.name)) relabel = true;
      if (identity.userId && member.user_id === identity.userId && member.role) {
        room.standing.role = member.role;
      }
    }
    room.view.setModerating(this.moderates(room));
    if (relabel) room.view.relabel();
  }

  #notification(note) {
    const room = this.rooms.get(note && note.room);
    if (!room || typeof note.text !== "string") return;
    const stick = room === this.current && this.hooks.pane.nearBottom();
    if (note.type === "mute" && typeof note.user_id === "string") {
      const at = Date.parse(note.timestamp) || Date.now();
      room.standing.mutes.set(note.user_id, at + (Number(note.minutes) || 0) * 60_000);
    } else if (note.type === "unmute" && typeof note.user_id === "string") {
      room.standing.mutes.delete(note.user_id);
    }
    room.view.addNotice(note.text, note.timestamp);
    if (stick) this.hooks.pane.scrollToBottom();
    if (note.type === "mute" || note.type === "unmute") this.#renderHeader(room);
    this.hooks.roomsChanged();
  }

  /** A moderator removed this identity from the room (every tab of it gets this). */
  #kicked(data) {
    const room = this.rooms.get(data && data.room);
    if (room) this.#removed(room, data.until, typeof data.by_name === "string" ? data.by_name : "");
  }

  /** Removed from `room` until `untilIso`: say so, keep its messages, join again after. */
  #removed(room, untilIso, byName) {
    const { standing } = room;
    const until = Date.parse(untilIso);
    standing.kickedUntil = Number.isFinite(until) ? until : Date.now() + KICK_FALLBACK_MS;
    standing.kickedBy = byName;
    room.member.lost();
    room.presence.clearTyping();
    room.presence.set([]);
    const when = whenText(new Date(standing.kickedUntil).toISOString());
    const who = byName ? `${byName} removed you from the room` : "You were removed from the room";
    const stick = room === this.current && this.hooks.pane.nearBottom();
    room.view.addNotice(`${who}. You can join it again at ${when}.`, new Date().toISOString());
    if (stick) this.hooks.pane.scrollToBottom();
    clearTimeout(standing.rejoin);
    standing.rejoin = setTimeout(() => {
      standing.kickedUntil = 0;
      this.#join(room);
      this.hooks.changed();
    }, Math.max(0, standing.kickedUntil - Date.now()) + 1_000);
    this.#renderPane(room);
    this.hooks.presence(room.name, 0);
    this.hooks.changed();
  }

  // ------------------------------------------------------------ editing and moderating

  /** Change your message `id` to `text`; resolves to "" or why it was refused. */
  async editMessage(room, id, text, clientId) {
    const payload = { room: room.name, id, message: text, client_id: clientId };
    const ack = await this.#act(room, "editMessage", payload);
    if (!ack.ok) return this.#actionRefused(ack, "edit");
    this.#receive({
      type: "edit", room: room.name, id, seq: ack.seq, message: text,
      edited_at: ack.edited_at || new Date().toISOString(), user_id: identity.userId,
    }, "live", room);
    return "";
  }

  /** Delete message `id` (yours, or anyone's as a moderator); "" or why it was refused. */
  async deleteMessage(room, id, clientId) {
    const ack = await this.#act(room, "deleteMessage", { room: room.name, id, client_id: clientId });
    if (!ack.ok) return this.#actionRefused(ack, "delete");
    this.#receive({
      type: "delete", room: room.name, id, seq: ack.seq, deleted_by: identity.userId,
      timestamp: new Date().toISOString(),
    }, "live", room);
    return "";
  }

  /**
   * A moderation event (`muteUser`, `kickUser`, `setRole`) about `userId` in `room`, with
   * `extra` fields; "" or why it was refused. What it did comes back as a notification.
   */
  async moderate(room, event, userId, extra = {}) {
    const ack = await this.#act(room, event, { room: room.name, user_id: userId, ...extra });
    if (!ack.ok) return this.#actionRefused(ack, event === "setRole" ? "role" : "moderate");
    return "";
  }

  async #act(room, event, payload) {
    if (!this.conn.connected || !room.member.live) {
      return { ok: false, offline: true };
    }
    return (await this.conn.request(event, payload)) || { ok: false, timeout: true };
  }

  #actionRefused(ack, action) {
    if (ack.offline) return "Not connected to the room right now: try again once it is back.";
    if (ack.timeout) {
      return "No answer from the server: check the connection and try again.";
    }
    return this.#reason(ack.error || {}, action);
  }

  // ------------------------------------------------------------ connection

  #connected() {
    for (const room of this.rooms.values()) if (!room.standing.kicked) this.#join(room);
    this.#redrawPending();
  }

  #disconnected() {
    for (const room of this.rooms.values()) {
      room.member.lost();
      room.outbox.interrupted();
      room.presence.clearTyping();
    }
    this.#redrawPending();
    this.renderCurrent();
    this.hooks.changed();
  }

  #redrawPending() {
    for (const room of this.rooms.values()) {
      for (const p of room.outbox) this.#renderPending(room, p);
    }
  }
}

function button(label, onClick) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "button ghost small";
  node.textContent = label;
  node.addEventListener("click", onClick);
  return node;
}

async function fetchMessages(name, query) {
  const res = await apiFetch(`api/rooms/${encodeURIComponent(name)}/messages?${query}`);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : `HTTP ${res.status}`);
  return body;
}
