// The Socket.IO connection and what the page says about it: connecting, online,
// reconnecting (with the attempt number) or offline. When the browser says the network is
// back, or a hidden tab is shown again, it reconnects at once instead of waiting out the
// back-off.

export const ACK_TIMEOUT_MS = 10_000;

export class Connection {
  constructor(io) {
    // Same directory as the page, so a front door serving chatd under a path prefix works.
    this.socket = io({
      path: location.pathname.replace(/[^/]*$/, "") + "socket.io/",
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
    });
    this.status = "connecting";
    this.attempt = 0;
    this.listeners = new Set();
    const { socket } = this;
    socket.on("connect", () => {
      this.attempt = 0;
      this.#set("online");
    });
    socket.on("disconnect", (reason) => {
      this.#set(this.#lost());
      // The server closed this session on purpose; Socket.IO then waits for us to reconnect.
      if (reason === "io server disconnect") socket.connect();
    });
    socket.on("connect_error", () => {
      // Not retrying by itself means the server refused this client; ask again a bit later.
      if (!socket.active) setTimeout(() => this.reconnectNow(), 5_000);
      this.#set(this.#lost());
    });
    socket.io.on("reconnect_attempt", (attempt) => {
      this.attempt = attempt;
      this.#set(this.#lost());
    });
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => {
      if (!socket.connected) this.#set("offline");
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.reconnectNow();
    });
  }

  get connected() {
    return this.socket.connected;
  }

  /** Resolves true once connected, or false after `timeoutMs`. */
  whenConnected(timeoutMs) {
    if (this.socket.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok) => {
        clearTimeout(timer);
        this.socket.off("connect", onConnect);
        resolve(ok);
      };
      const onConnect = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.socket.on("connect", onConnect);
    });
  }

  /** `fn(status, changed)` whenever the status is set. */
  onStatus(fn) {
    this.listeners.add(fn);
  }

  /** A server event. */
  on(event, fn) {
    this.socket.on(event, fn);
  }

  start() {
    this.socket.connect();
  }

  /** Connect now if not connected (skipping any back-off wait in progress). */
  reconnectNow() {
    if (this.socket.connected || this.status === "connecting") return;
    // disconnect() drops the pending back-off timer; connect() then tries at once.
    this.socket.disconnect();
    this.socket.connect();
    this.#set(this.#lost());
  }

  /** A fresh session (after a change of name): every room is joined again. */
  restart() {
    this.socket.disconnect();
    this.socket.connect();
  }

  /** Emit with an acknowledgement: resolves to the ack, or null when none came in time. */
  request(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
    return new Promise((resolve) => {
      this.socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
        resolve(err || !ack || typeof ack !== "object" ? null : ack);
      });
    });
  }

  /** Emit without waiting for an answer (typing, leaving). */
  send(event, payload) {
    if (this.socket.connected) this.socket.emit(event, payload);
  }

  #lost() {
    return navigator.onLine ? "reconnecting" : "offline";
  }

  #set(status) {
    const changed = status !== this.status;
    this.status = status;
    for (const fn of this.listeners) fn(status, changed);
  }
}
