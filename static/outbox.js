// A room's messages written but not yet acknowledged. They are sent one at a time, oldest
// first (so they keep their order), retried with the same client_id (so the server stores
// each once), and survive a reload. Pure state: the room controller does the sending.

export class Pending {
  constructor(clientId, text) {
    this.clientId = clientId;
    this.text = text;
    this.state = "queued"; // queued | sending | failed
    this.error = "";
    this.tries = 0;
    this.timer = 0; // a back-off in progress holds this one (and the ones behind it)
    this.gen = 0; // which attempt an ack answers; older answers are ignored
    this.done = false;
  }
}

export class Outbox {
  constructor() {
    this.items = new Map(); // client_id -> Pending, in the order written
    this.sending = null;
  }

  get size() {
    return this.items.size;
  }

  [Symbol.iterator]() {
    return this.items.values();
  }

  add(text, clientId) {
    const pending = new Pending(clientId, text);
    this.items.set(clientId, pending);
    return pending;
  }

  get(clientId) {
    return this.items.get(clientId);
  }

  /** The next one to send now, or null: one is on its way, waits out a back-off, or none. */
  next() {
    if (this.sending) return null;
    for (const pending of this.items.values()) {
      if (pending.state !== "queued") continue;
      return pending.timer ? null : pending;
    }
    return null;
  }

  /** Mark `pending` as on its way; returns the attempt number its ack must carry. */
  begin(pending) {
    this.sending = pending;
    pending.state = "sending";
    pending.gen += 1;
    return pending.gen;
  }

  /** The ack (or its timeout) for attempt `gen` came; false when it is a stale one. */
  answered(pending, gen) {
    if (pending.gen !== gen) return false;
    if (this.sending === pending) this.sending = null;
    return true;
  }

  /** Back in line, to be sent again; after `delayMs` when given. */
  requeue(pending, delayMs, wake) {
    pending.state = "queued";
    pending.error = "";
    clearTimeout(pending.timer);
    pending.timer = 0;
    if (delayMs) {
      pending.timer = setTimeout(() => {
        pending.timer = 0;
        wake();
      }, delayMs);
    }
  }

  /** The next back-off for a refusal worth retrying: 1 s, 2 s, 4 s … at most 10 s. */
  backoff(pending) {
    const ms = Math.min(1_000 * 2 ** pending.tries, 10_000);
    pending.tries += 1;
    return ms;
  }

  fail(pending, message) {
    pending.state = "failed";
    pending.error = message;
  }

  /** Stored, or discarded: it leaves the outbox for good. */
  finish(clientId) {
    const pending = this.items.get(clientId);
    if (!pending) return null;
    pending.done = true;
    clearTimeout(pending.timer);
    this.items.delete(clientId);
    if (this.sending === pending) this.sending = null;
    return pending;
  }

  /** The connection dropped: nothing is on its way any more. */
  interrupted() {
    this.sending = null;
    for (const pending of this.items.values()) {
      if (pending.state === "sending") pending.state = "queued";
    }
  }

  /** Stop every timer (the room was left). */
  close() {
    for (const pending of this.items.values()) clearTimeout(pending.timer);
  }

  /** What a reload needs to send them again: [{client_id, text}]. */
  snapshot() {
    return [...this.items.values()].map((p) => ({ client_id: p.clientId, text: p.text }));
  }
}
