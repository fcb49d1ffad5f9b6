// One room's timeline as data: confirmed messages in seq order and never twice, join/leave
// notices where they happened, and pending (unsent) messages at the bottom until their ack
// gives them a seq. Edits and deletions take seqs of their own (docs/identities.md): they
// change a message in place and count as seen, so they never look like a gap. Pure: no
// DOM, so Node's test runner checks the ordering rules; the renderer (render.js) mirrors
// every change into the page.
import { dayKey } from "./time.js";

// Consecutive messages from one person within this long share one header.
export const GROUP_GAP_MS = 5 * 60 * 1000;

let noticeCount = 0;

/** Whether two entries are by the same person: the same identity, not just the same name. */
export function sameAuthor(a, b) {
  if (a.own !== b.own) return false;
  if (a.userId && b.userId) return a.userId === b.userId;
  return a.user === b.user;
}

/** True when `entry` continues `prev`'s group: same person, same day, shortly after. */
export function continues(prev, entry) {
  if (!prev || prev.kind === "notice" || entry.kind === "notice") return false;
  if (prev.deleted || entry.deleted) return false;
  return sameAuthor(prev, entry) && Math.abs(entry.time - prev.time) < GROUP_GAP_MS &&
    dayKey(new Date(prev.time)) === dayKey(new Date(entry.time));
}

/** True when `entry` is the first of its local day, so a date separator goes above it. */
export function startsDay(prev, entry) {
  return !prev || dayKey(new Date(prev.time)) !== dayKey(new Date(entry.time));
}

export class Timeline {
  constructor() {
    this.entries = [];
    this.bySeq = new Map();
    this.byId = new Map();
    this.byClientId = new Map(); // pending entries
    this.seen = new Set(); // every seq accounted for: messages, edits and deletions
    this.minSeq = Infinity;
    this.maxSeq = 0;
  }

  /** Confirmed messages shown. */
  get count() {
    return this.bySeq.size;
  }

  has(msg) {
    return this.byId.has(msg.id) || this.bySeq.has(msg.seq);
  }

  hasSeq(seq) {
    return this.bySeq.has(seq);
  }

  pending(clientId) {
    return this.byClientId.get(clientId);
  }

  indexOf(entry) {
    // Most changes happen at the bottom: search from there.
    return this.entries.lastIndexOf(entry);
  }

  /** The entries just before and after `entry`. */
  neighbours(entry) {
    const i = this.indexOf(entry);
    return { prev: this.entries[i - 1], next: this.entries[i + 1] };
  }

  /** Add a confirmed message in seq order; returns its entry, or null for a duplicate. */
  addMessage(msg, own) {
    if (this.has(msg)) return null;
    const deleted = msg.deleted === true;
    const entry = {
      kind: "msg", key: `m:${msg.id}`, id: msg.id, seq: msg.seq,
      user: deleted ? "" : msg.user, userId: deleted ? "" : msg.user_id || "",
      text: deleted ? "" : msg.message, time: Date.parse(msg.timestamp),
      clientId: msg.client_id || "", own: Boolean(own) && !deleted, deleted,
      editSeq: Number.isInteger(msg.edit_seq) ? msg.edit_seq : 0,
      editedAt: typeof msg.edited_at === "string" ? msg.edited_at : null, msg,
    };
    this.entries.splice(this.#slot(entry), 0, entry);
    this.bySeq.set(entry.seq, entry);
    this.byId.set(entry.id, entry);
    this.markSeen(entry.seq);
    return entry;
  }

  /** Account for `seq` (of any entry); true when it was not seen before. */
  markSeen(seq) {
    if (!Number.isInteger(seq) || this.seen.has(seq)) return false;
    this.seen.add(seq);
    this.minSeq = Math.min(this.minSeq, seq);
    this.maxSeq = Math.max(this.maxSeq, seq);
    return true;
  }

  /**
   * An edit entry or a `messageEdited` event. It changes the message only when it is newer
   * than the message's own state (a message entry already shows its newest edit); returns
   * the changed entry, or null when nothing shown changed.
   */
  applyEdit(edit) {
    this.markSeen(edit.seq);
    const entry = this.byId.get(edit.id);
    if (!entry || entry.kind !== "msg" || entry.deleted || edit.deleted === true) return null;
    if (typeof edit.message !== "string") return null;
    if (Number.isInteger(edit.seq) && edit.seq <= entry.editSeq) return null;
    entry.text = edit.message;
    entry.editSeq = Number.isInteger(edit.seq) ? edit.seq : entry.editSeq;
    entry.editedAt = typeof edit.edited_at === "string" ? edit.edited_at : entry.editedAt;
    entry.msg = { ...entry.msg, message: edit.message, edit_seq: entry.editSeq,
      edited_at: entry.editedAt };
    return entry;
  }

  /** A deletion entry or a `messageDeleted` event: always applies. The changed entry or null. */
  applyDelete(deletion) {
    this.markSeen(deletion.seq);
    const entry = this.byId.get(deletion.id);
    if (!entry || entry.kind !== "msg" || entry.deleted) return null;
    entry.deleted = true;
    entry.text = "";
    entry.user = "";
    entry.userId = "";
    entry.own = false;
    entry.msg = { id: entry.id, room: entry.msg.room, seq: entry.seq,
      timestamp: entry.msg.timestamp, deleted: true, deleted_by: deletion.deleted_by };
    return entry;
  }

  /** A message not yet acknowledged: always at the bottom, in the order it was written. */
  addPending(text, user, clientId, time = Date.now()) {
    const entry = { kind: "pending", key: `p:${clientId}`, clientId, user, text, time, own: true };
    this.entries.push(entry);
    this.byClientId.set(clientId, entry);
    return entry;
  }

  /** A join or leave notice: after everything confirmed, above the pending messages. */
  addNotice(text, timestamp) {
    noticeCount += 1;
    const entry = { kind: "notice", key: `n:${noticeCount}`, text, time: Date.parse(timestamp) };
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1].kind === "pending") i -= 1;
    this.entries.splice(i, 0, entry);
    return entry;
  }

  /** Drop an entry (a discarded pending message, or later a deleted one). */
  remove(entry) {
    const i = this.indexOf(entry);
    if (i === -1) return false;
    this.entries.splice(i, 1);
    if (entry.kind === "pending") this.byClientId.delete(entry.clientId);
    if (entry.kind === "msg") {
      this.bySeq.delete(entry.seq);
      this.byId.delete(entry.id);
    }
    return true;
  }

  /** Change a confirmed message in place (an edit, later); returns its entry or null. */
  update(id, changes) {
    const entry = this.byId.get(id);
    if (!entry) return null;
    if (typeof changes.message === "string") entry.text = changes.message;
    entry.msg = { ...entry.msg, ...changes };
    return entry;
  }

  /**
   * Who "you" are became known or changed (the `session` came after some history): the
   * messages whose own-ness `isMine(msg)` now answers differently.
   */
  reown(isMine) {
    const changed = [];
    for (const entry of this.entries) {
      if (entry.kind !== "msg" || entry.deleted) continue;
      const own = Boolean(isMine(entry.msg));
      if (own !== entry.own) {
        entry.own = own;
        changed.push(entry);
      }
    }
    return changed;
  }

  /** The first confirmed message after `seq` that someone else wrote (unread divider). */
  firstUnreadAfter(seq) {
    let found = null;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i];
      if (entry.kind !== "msg") continue;
      if (entry.seq <= seq) break;
      if (!entry.own) found = entry;
    }
    return found;
  }

  /** The highest seq such that every seq from `from` + 1 up to it is here. */
  contiguousFrom(from) {
    let seq = from;
    while (this.seen.has(seq + 1)) seq += 1;
    return seq;
  }

  /**
   * Where a confirmed message goes. Older than everything shown (a page loaded by scrolling
   * up): first. Otherwise walk back from the bottom over pending messages, newer messages
   * and notices that happened after it, and go right after what remains.
   */
  #slot(entry) {
    if (this.count > 0 && entry.seq < this.minSeq) return 0;
    let i = this.entries.length;
    while (i > 0) {
      const prev = this.entries[i - 1];
      if (prev.kind === "pending" ||
          (prev.kind === "msg" && prev.seq > entry.seq) ||
          (prev.kind === "notice" && prev.time > entry.time)) {
        i -= 1;
      } else {
        break;
      }
    }
    return i;
  }
}
