// chatd browser client: rooms, history, live messages, presence, typing, and a send path
// that loses nothing (pending until acked, retried with the same client_id, de-duplicated).
// Protocol: DESIGN.md "Protocol" and "REST". All user text goes in through textContent.
import { RoomView } from "./messages.js";
import {
  MESSAGE_MAX_CHARS, ROOM_MAX_CHARS, USERNAME_MAX_CHARS,
  debounce, el, hueClass, initial, nameProblem, newClientId, relativeTime, storage,
} from "./util.js";

const ACK_TIMEOUT_MS = 10_000;
const ROOMS_POLL_MS = 10_000;
const TYPING_EXPIRE_MS = 3_000; // someone we hear nothing more from stops "typing" after this
const TYPING_IDLE_MS = 2_000; // we send typing:false after this long without a keystroke
const TYPING_REFRESH_MS = 2_000; // while typing, repeat typing:true so others' expiry holds
const PAGE_SIZE = 50;
const GAP_PAGE_SIZE = 200; // REST maximum (http.py PAGE_MAX)
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 150;
// Worth retrying with the same client_id: the server said "not now", not "never".
const RETRYABLE = new Set(["rate_limited", "unavailable", "internal"]);

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"), main: $("main"), sidebar: $("sidebar"), backdrop: $("backdrop"), menu: $("menu-button"),
  newRoomForm: $("new-room-form"), newRoom: $("new-room"), newRoomError: $("new-room-error"),
  joined: $("joined-rooms"), noJoined: $("no-joined-rooms"), others: $("other-rooms"), noOthers: $("no-other-rooms"),
  otherHeading: $("other-heading"), meName: $("me-name"), meAvatar: $("me-avatar"),
  changeName: $("change-name"), title: $("room-title"), online: $("room-online"),
  onlineList: $("online-list"), banner: $("banner"), scroller: $("scroller"), jump: $("jump"),
  typing: $("typing"), composer: $("composer"), input: $("message"), send: $("send"),
  messageLabel: $("message-label"), toast: $("toast"), toastText: $("toast-text"),
  toastClose: $("toast-close"), welcome: $("welcome"), welcomeForm: $("welcome-form"),
  welcomeTitle: $("welcome-title"), welcomeIntro: $("welcome-intro"),
  welcomeName: $("welcome-name"), welcomeRoom: $("welcome-room"),
  welcomeRoomField: $("welcome-room-field"), welcomeError: $("welcome-error"),
  welcomeCancel: $("welcome-cancel"), welcomeSubmit: $("welcome-submit"),
};

const state = {
  username: storage.get("username", ""),
  rooms: new Map(), // joined rooms by name, in the order they were joined
  current: null,
  directory: [], // GET api/rooms
  conn: "connecting",
  attempt: 0,
  started: false,
};

// Same directory as the page, so a front door serving chatd under a path prefix works too.
const socket = window.io({
  path: location.pathname.replace(/[^/]*$/, "") + "socket.io/",
  autoConnect: false,
  reconnectionDelay: 500,
  reconnectionDelayMax: 5_000,
});

// ---------------------------------------------------------------- rooms and their state

function makeRoom(name) {
  return {
    name,
    view: new RoomView(name),
    live: false, // joined on the current connection
    joinGen: 0,
    joining: false,
    loaded: false, // got its first history
    synced: 0, // every message with view.minSeq <= seq <= synced is shown
    gapTarget: 0,
    filling: false,
    hasOlder: false,
    loadingOlder: false,
    olderError: false,
    pending: new Map(), // client_id -> pending message, in send order
    sending: null, // the pending message waiting for its ack (one at a time keeps order)
    online: [],
    typers: new Map(), // user -> expiry timer
    typingSent: false,
    typingSentAt: 0,
    typingIdle: 0,
    unread: 0,
    scroll: null, // saved scrollTop while another room is shown; null = at the bottom
  };
}

const current = () => state.rooms.get(state.current) || null;

function saveRooms() {
  storage.set("rooms", [...state.rooms.keys()]);
  storage.set("current", state.current);
}

function enterRoom(name) {
  let room = state.rooms.get(name);
  if (!room) {
    room = makeRoom(name);
    state.rooms.set(name, room);
    join(room);
  }
  switchTo(name);
  saveRooms();
  return room;
}

function leaveRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  stopTyping(room);
  if (socket.connected && room.live) socket.emit("leaveRoom", { room: name });
  for (const timer of room.typers.values()) clearTimeout(timer);
  state.rooms.delete(name);
  saveOutbox();
  if (state.current === name) {
    const next = state.rooms.keys().next();
    state.current = null;
    if (next.done) showEmpty();
    else switchTo(next.value);
  }
  saveRooms();
  renderSidebar();
  refreshRoomsSoon();
}

// ---------------------------------------------------------------- joining and history

function join(room) {
  if (!socket.connected || room.joining) return;
  room.joining = true;
  const gen = ++room.joinGen;
  const payload = { username: state.username, room: room.name };
  // A re-join after a reconnect asks only for what it missed.
  if (room.loaded) payload.since = room.synced;
  socket.timeout(ACK_TIMEOUT_MS).emit("joinRoom", payload, (err, ack) => {
    if (gen !== room.joinGen || state.rooms.get(room.name) !== room) return;
    room.joining = false;
    if (err) {
      // Timed out while connected: try again. A disconnect re-joins on "connect".
      if (socket.connected) setTimeout(() => join(room), 1_000);
      return;
    }
    if (!ack.ok) {
      if (RETRYABLE.has(ack.error.code)) {
        setTimeout(() => join(room), 3_000);
        return;
      }
      if (ack.error.field === "username") {
        // The server refuses the name itself (stricter than our check): ask for another.
        openWelcome(true);
        showFieldError(ui.welcomeError, `The server refused the name: ${ack.error.message}`);
        return;
      }
      showError(`Couldn't join “${room.name}”: ${ack.error.message}`);
      if (!room.loaded) leaveRoom(room.name);
      return;
    }
    room.live = true;
    room.online = Array.isArray(ack.online) ? ack.online : [];
    const first = !room.loaded;
    if (first) {
      room.loaded = true;
      room.hasOlder = ack.has_more;
      room.synced = room.view.maxSeq; // the first history is contiguous by construction
    }
    advance(room);
    if (room.synced < ack.last_seq) fillGap(room, ack.last_seq);
    if (room === current()) {
      if (first) {
        scrollToBottom();
        fillViewport(room);
      }
      renderHeader();
    }
    renderEdge(room);
    renderSidebar();
    pump(room);
  });
}

socket.on("chat-history", (messages) => {
  if (!Array.isArray(messages)) return;
  for (const msg of messages) receive(msg, "history");
});

socket.on("chatMessage", (msg) => receive(msg, "live"));

/** Everything that shows a confirmed message goes through here. */
function receive(msg, source) {
  if (!msg || typeof msg !== "object") return;
  const room = state.rooms.get(msg.room);
  if (!room) return;
  const fresh = source === "live" || source === "fill" || (source === "history" && room.loaded);
  const isCurrent = room === current();
  const stick = isCurrent && (nearBottom() || (fresh && msg.user === state.username));
  const node = addMessage(room, msg);
  if (!node) return;
  if (room.view.count === 1) renderEdge(room);
  if (source === "older") return;
  if (fresh) {
    if (room.typers.delete(msg.user) && isCurrent) renderTyping();
    noteActivity(room.name, msg.timestamp);
    if ((!isCurrent || document.hidden) && msg.user !== state.username) {
      room.unread += 1;
      renderSidebarSoon();
    }
    if (isCurrent && !stick) ui.jump.hidden = false;
  }
  advance(room);
  // A seq beyond the next one means live messages were missed: fetch them over REST.
  if (source === "live" && room.live && !room.joining && room.view.maxSeq > room.synced) {
    fillGap(room, room.view.maxSeq);
  }
  if (stick) scrollToBottom();
}

function addMessage(room, msg) {
  const pending = msg.client_id ? room.pending.get(msg.client_id) : undefined;
  if (pending) {
    finishPending(pending);
    return room.view.settle(pending.node, msg);
  }
  return room.view.insert(msg, msg.user === state.username);
}

function advance(room) {
  while (room.view.bySeq.has(room.synced + 1)) room.synced += 1;
}

async function fillGap(room, target) {
  room.gapTarget = Math.max(room.gapTarget, target);
  if (room.filling) return;
  room.filling = true;
  try {
    while (room.synced < room.gapTarget && state.rooms.get(room.name) === room) {
      const goal = room.gapTarget;
      const page = await fetchMessages(room.name, `after=${room.synced}&limit=${GAP_PAGE_SIZE}`);
      for (const msg of page.messages) receive(msg, "fill");
      const last = page.messages.length ? page.messages[page.messages.length - 1].seq : 0;
      // Without has_more, everything that exists up to `goal` is here now; a seq the server
      // assigned but never stored stays a hole, so skip over it.
      room.synced = Math.max(room.synced, last, page.has_more ? 0 : goal);
      advance(room);
    }
  } catch {
    // Offline or the server is busy: the next re-join asks with since=synced anyway.
    if (socket.connected) setTimeout(() => fillGap(room, room.gapTarget), 3_000);
  } finally {
    room.filling = false;
  }
}

async function loadOlder(room) {
  if (room.loadingOlder || !room.hasOlder || !room.loaded) return;
  room.loadingOlder = true;
  room.olderError = false;
  renderEdge(room);
  try {
    const page = await fetchMessages(room.name, `before=${room.view.minSeq}&limit=${PAGE_SIZE}`);
    const isCurrent = room === current();
    const height = ui.scroller.scrollHeight;
    const top = ui.scroller.scrollTop;
    // Newest first: each one is then older than everything shown and goes on top.
    for (let i = page.messages.length - 1; i >= 0; i--) receive(page.messages[i], "older");
    room.hasOlder = page.has_more;
    // Keep what the reader was looking at in place.
    if (isCurrent) ui.scroller.scrollTop = top + (ui.scroller.scrollHeight - height);
  } catch {
    room.olderError = true;
  } finally {
    room.loadingOlder = false;
    renderEdge(room);
  }
  if (!room.olderError) fillViewport(room);
}

/** Load older pages until the list can scroll (a tall window shows more than one page). */
function fillViewport(room) {
  if (room !== current() || !room.hasOlder) return;
  if (ui.scroller.scrollHeight <= ui.scroller.clientHeight + NEAR_TOP_PX) loadOlder(room);
}

async function fetchMessages(name, query) {
  const res = await fetch(`api/rooms/${encodeURIComponent(name)}/messages?${query}`, {
    headers: { Accept: "application/json" },
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : `HTTP ${res.status}`);
  return body;
}

// ---------------------------------------------------------------- sending

function sendComposer() {
  const room = current();
  if (!room) return;
  const text = ui.input.value;
  if (!text.trim()) return;
  if ([...text].length > MESSAGE_MAX_CHARS) {
    showError(`A message can be at most ${MESSAGE_MAX_CHARS} characters.`);
    return;
  }
  ui.input.value = "";
  stopTyping(room);
  queueMessage(room, text, newClientId());
  saveOutbox();
  scrollToBottom();
  pump(room);
}

function queueMessage(room, text, clientId) {
  const pending = { clientId, room, text, state: "queued", error: "", tries: 0, timer: 0 };
  pending.node = room.view.addPending(text, state.username, clientId);
  room.pending.set(clientId, pending);
  renderPending(pending);
  return pending;
}

/** Send the room's queued messages one at a time, oldest first, while the room is live. */
function pump(room) {
  if (room.sending || !socket.connected || !room.live) {
    for (const p of room.pending.values()) renderPending(p);
    return;
  }
  const pending = [...room.pending.values()].find((p) => p.state === "queued");
  // One waiting out a back-off holds the ones behind it, so they keep their order.
  if (!pending || pending.timer) return;
  room.sending = pending;
  pending.state = "sending";
  renderPending(pending);
  const payload = { room: room.name, message: pending.text, client_id: pending.clientId };
  const gen = (pending.gen = (pending.gen || 0) + 1);
  socket.timeout(ACK_TIMEOUT_MS).emit("chatMessage", payload, (err, ack) => {
    if (pending.gen !== gen) return;
    if (room.sending === pending) room.sending = null;
    if (pending.done) {
      pump(room);
      return;
    }
    if (err) {
      // No ack (timeout or disconnect): it may or may not be stored. Sending again with the
      // same client_id is safe, the server answers with the stored message.
      pending.state = "queued";
      if (socket.connected) retryLater(pending, 1_000);
    } else if (ack.ok) {
      addMessage(room, {
        id: ack.id, seq: ack.seq, timestamp: ack.timestamp, room: room.name,
        user: state.username, message: pending.text, client_id: pending.clientId,
      });
      advance(room);
      if (room.view.maxSeq > room.synced && room.live) fillGap(room, room.view.maxSeq);
    } else if (ack.error.code === "not_joined") {
      pending.state = "queued";
      room.live = false;
      join(room);
    } else if (RETRYABLE.has(ack.error.code)) {
      pending.state = "queued";
      retryLater(pending, Math.min(1_000 * 2 ** pending.tries++, 10_000));
    } else {
      pending.state = "failed";
      pending.error = ack.error.message;
    }
    renderPending(pending);
    pump(room);
  });
}

function retryLater(pending, ms) {
  clearTimeout(pending.timer);
  pending.timer = setTimeout(() => {
    pending.timer = 0;
    pump(pending.room);
  }, ms);
}

function finishPending(pending) {
  pending.done = true;
  clearTimeout(pending.timer);
  pending.room.pending.delete(pending.clientId);
  if (pending.room.sending === pending) pending.room.sending = null;
  saveOutbox();
}

function renderPending(pending) {
  if (pending.done) return;
  const node = pending.node;
  let status = node.querySelector(".status");
  if (!status) {
    status = el("span", "status");
    node.append(status);
  }
  node.classList.toggle("failed", pending.state === "failed");
  node.querySelector(".actions")?.remove();
  if (pending.state === "failed") {
    status.textContent = `Not sent: ${pending.error}`;
    const actions = el("span", "actions");
    const retry = el("button", "button ghost small", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => {
      pending.state = "queued";
      renderPending(pending);
      pump(pending.room);
    });
    const discard = el("button", "button ghost small", "Discard");
    discard.type = "button";
    discard.addEventListener("click", () => {
      finishPending(pending);
      pending.node.remove();
    });
    actions.append(retry, discard);
    node.append(actions);
  } else if (pending.state === "sending") {
    status.textContent = "Sending…";
  } else {
    status.textContent = socket.connected ? "Queued" : "Waiting for connection…";
  }
}

// Messages not yet acked survive a reload: they are sent again with the same client_id.
function saveOutbox() {
  const outbox = [];
  for (const room of state.rooms.values()) {
    for (const p of room.pending.values()) {
      outbox.push({ room: room.name, client_id: p.clientId, text: p.text });
    }
  }
  storage.set("outbox", { user: state.username, messages: outbox });
}

function restoreOutbox() {
  const saved = storage.get("outbox", null);
  if (!saved || saved.user !== state.username || !Array.isArray(saved.messages)) return;
  for (const m of saved.messages) {
    const room = state.rooms.get(m.room);
    if (room && typeof m.text === "string" && typeof m.client_id === "string") {
      queueMessage(room, m.text, m.client_id);
    }
  }
}

// ---------------------------------------------------------------- typing and presence

function typingTick(room) {
  const now = Date.now();
  if (!room.typingSent || now - room.typingSentAt > TYPING_REFRESH_MS) emitTyping(room, true);
  clearTimeout(room.typingIdle);
  room.typingIdle = setTimeout(() => stopTyping(room), TYPING_IDLE_MS);
}

function stopTyping(room) {
  clearTimeout(room.typingIdle);
  if (room.typingSent) emitTyping(room, false);
}

function emitTyping(room, typing) {
  room.typingSent = typing;
  room.typingSentAt = Date.now();
  if (socket.connected && room.live) socket.emit("typing", { room: room.name, typing });
}

socket.on("typing", (data) => {
  const room = state.rooms.get(data && data.room);
  if (!room || data.user === state.username) return;
  clearTimeout(room.typers.get(data.user));
  if (data.typing) {
    room.typers.set(data.user, setTimeout(() => {
      room.typers.delete(data.user);
      if (room === current()) renderTyping();
    }, TYPING_EXPIRE_MS));
  } else {
    room.typers.delete(data.user);
  }
  if (room === current()) renderTyping();
});

socket.on("presence", (data) => {
  const room = state.rooms.get(data && data.room);
  if (!room || !Array.isArray(data.users)) return;
  room.online = data.users;
  const entry = state.directory.find((r) => r.name === room.name);
  if (entry) entry.online = new Set(data.users).size;
  if (room === current()) renderHeader();
  renderSidebarSoon();
});

socket.on("notification", (note) => {
  const room = state.rooms.get(note && note.room);
  if (!room) return;
  const stick = room === current() && nearBottom();
  room.view.addNotice(note.text, note.timestamp);
  if (stick) scrollToBottom();
  refreshRoomsSoon();
});

// ---------------------------------------------------------------- connection

socket.on("connect", () => {
  state.attempt = 0;
  setConn("online");
  for (const room of state.rooms.values()) join(room);
  refreshRooms();
});

socket.on("disconnect", (reason) => {
  for (const room of state.rooms.values()) {
    room.live = false;
    room.joining = false;
    room.joinGen += 1;
    room.sending = null;
    for (const p of room.pending.values()) {
      if (p.state === "sending") p.state = "queued";
      renderPending(p);
    }
    for (const timer of room.typers.values()) clearTimeout(timer);
    room.typers.clear();
  }
  renderTyping();
  setConn(navigator.onLine ? "reconnecting" : "offline");
  // The server closed this session on purpose; Socket.IO then waits for us to reconnect.
  if (reason === "io server disconnect") socket.connect();
});

socket.on("connect_error", () => {
  // Not retrying by itself means the server refused this client; ask again a bit later.
  if (!socket.active) setTimeout(() => socket.connect(), 5_000);
  setConn(navigator.onLine ? "reconnecting" : "offline");
});

socket.io.on("reconnect_attempt", (attempt) => {
  state.attempt = attempt;
  renderBanner();
});

window.addEventListener("online", () => {
  if (!socket.connected) setConn("reconnecting");
});
window.addEventListener("offline", () => {
  if (!socket.connected) setConn("offline");
});

function setConn(conn) {
  state.conn = conn;
  renderBanner();
  for (const room of state.rooms.values()) {
    for (const p of room.pending.values()) renderPending(p);
  }
}

function renderBanner() {
  const { banner } = ui;
  banner.dataset.state = state.conn;
  document.body.dataset.conn = state.conn;
  const later = " Messages you write are kept and sent when the connection is back.";
  if (state.conn === "online") {
    banner.hidden = true;
    banner.textContent = "";
  } else if (state.conn === "offline") {
    banner.hidden = false;
    banner.textContent = "You are offline." + later;
  } else if (state.conn === "reconnecting") {
    banner.hidden = false;
    const attempt = state.attempt > 1 ? ` (attempt ${state.attempt})` : "";
    banner.textContent = `Connection lost. Reconnecting…${attempt}` + later;
  } else {
    banner.hidden = false;
    banner.textContent = "Connecting…";
  }
}

// ---------------------------------------------------------------- room list

async function refreshRooms() {
  try {
    const res = await fetch("api/rooms", { headers: { Accept: "application/json" } });
    if (!res.ok) return;
    const body = await res.json();
    if (Array.isArray(body.rooms)) state.directory = body.rooms;
    renderSidebar();
  } catch {
    // The banner already says when the server is unreachable.
  }
}
const refreshRoomsSoon = debounce(refreshRooms, 300);

setInterval(() => {
  if (state.started && socket.connected && !document.hidden) refreshRooms();
}, ROOMS_POLL_MS);
document.addEventListener("visibilitychange", () => {
  if (document.hidden || !state.started) return;
  const room = current();
  if (room && room.unread) {
    room.unread = 0;
    renderSidebar();
  }
  if (socket.connected) refreshRooms();
});

function noteActivity(name, timestamp) {
  const entry = state.directory.find((r) => r.name === name);
  if (entry) {
    if (!entry.last_message_at || entry.last_message_at < timestamp) {
      entry.last_message_at = timestamp;
    }
  } else {
    state.directory.unshift({ name, last_message_at: timestamp, online: 0 });
  }
  renderSidebarSoon();
}

function roomItem(name, info, room) {
  const li = el("li", "room-item");
  const link = el("button", "room-link");
  link.type = "button";
  link.dataset.room = name;
  link.dataset.action = room ? "show" : "join";
  if (room && room === current()) {
    link.classList.add("active");
    link.setAttribute("aria-current", "true");
  }
  const hash = el("span", "room-hash", "#");
  hash.setAttribute("aria-hidden", "true");
  const text = el("span", "room-text");
  text.append(el("span", "room-name", name));
  const online = room && room.live ? new Set(room.online).size : (info && info.online) || 0;
  const meta = el("span", "room-meta");
  const count = el("span", online ? "room-online-count is-online" : "room-online-count",
    `${online} online`);
  meta.append(count);
  if (info && info.last_message_at) {
    const when = el("time", "room-when", relativeTime(new Date(info.last_message_at)));
    when.dateTime = info.last_message_at;
    meta.append(" · ", when);
  }
  text.append(meta);
  link.append(hash, text);
  if (room && room.unread) {
    const badge = el("span", "badge", room.unread > 99 ? "99+" : String(room.unread));
    badge.setAttribute("aria-label", `${room.unread} unread`);
    link.append(badge);
  }
  li.append(link);
  if (room) {
    const leave = el("button", "leave", "×");
    leave.type = "button";
    leave.dataset.room = name;
    leave.dataset.action = "leave";
    leave.title = "Leave room";
    leave.setAttribute("aria-label", `Leave ${name}`);
    li.append(leave);
  }
  return li;
}

function renderSidebar() {
  // Re-rendering replaces the buttons; put keyboard focus back where it was.
  const active = document.activeElement;
  const focus = active && ui.sidebar.contains(active) && active.dataset.room !== undefined
    ? { room: active.dataset.room, action: active.dataset.action } : null;
  const info = new Map(state.directory.map((r) => [r.name, r]));
  ui.joined.replaceChildren(
    ...[...state.rooms.values()].map((room) => roomItem(room.name, info.get(room.name), room)),
  );
  ui.noJoined.hidden = state.rooms.size > 0;
  const others = state.directory.filter((r) => !state.rooms.has(r.name));
  ui.others.replaceChildren(...others.map((r) => roomItem(r.name, r, null)));
  ui.noOthers.hidden = others.length > 0;
  if (focus) {
    for (const node of ui.sidebar.querySelectorAll("[data-room]")) {
      if (node.dataset.room === focus.room && node.dataset.action === focus.action) {
        node.focus();
        break;
      }
    }
  }
  renderTitle();
}

let sidebarFrame = 0;
function renderSidebarSoon() {
  if (!sidebarFrame) {
    sidebarFrame = requestAnimationFrame(() => {
      sidebarFrame = 0;
      renderSidebar();
    });
  }
}

ui.sidebar.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) return;
  const name = target.dataset.room;
  if (target.dataset.action === "leave") leaveRoom(name);
  else enterRoom(name);
  if (target.dataset.action !== "leave") {
    closeDrawer();
    ui.input.focus();
  }
});

ui.newRoomForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = ui.newRoom.value.trim();
  const problem = nameProblem(name, "room name", ROOM_MAX_CHARS);
  if (problem) {
    showFieldError(ui.newRoomError, problem);
    return;
  }
  showFieldError(ui.newRoomError, "");
  if (!state.rooms.has(name)) {
    try {
      const res = await fetch("api/rooms", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ name }),
      });
      const body = await res.json();
      if (!res.ok) {
        showFieldError(ui.newRoomError, `Couldn't create “${name}”: ${body.error.message}`);
        return;
      }
    } catch {
      showFieldError(ui.newRoomError, "The server can't be reached; try again in a moment.");
      return;
    }
  }
  ui.newRoom.value = "";
  enterRoom(name);
  refreshRoomsSoon();
  closeDrawer();
  ui.input.focus();
});

// ---------------------------------------------------------------- the room pane

function switchTo(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  const prev = current();
  if (prev && prev !== room) {
    prev.scroll = nearBottom() ? null : ui.scroller.scrollTop;
    stopTyping(prev);
  }
  state.current = name;
  room.unread = 0;
  ui.scroller.replaceChildren(room.view.edge, room.view.list);
  if (room.scroll === null) scrollToBottom();
  else ui.scroller.scrollTop = room.scroll;
  ui.jump.hidden = true;
  ui.input.disabled = false;
  ui.send.disabled = false;
  ui.input.placeholder = `Message #${name}`;
  ui.messageLabel.textContent = `Message #${name}`;
  renderHeader();
  renderTyping();
  renderEdge(room);
  renderSidebar();
  saveRooms();
  fillViewport(room);
}

function showEmpty() {
  ui.scroller.replaceChildren(
    el("p", "empty", "You are not in any room. Pick one from the list or create a new one."),
  );
  ui.title.textContent = "No room";
  ui.online.textContent = "";
  ui.online.classList.remove("is-online");
  ui.onlineList.replaceChildren();
  ui.typing.textContent = "";
  ui.input.disabled = true;
  ui.send.disabled = true;
  ui.input.placeholder = "Join a room to chat";
  renderTitle();
}

function renderHeader() {
  const room = current();
  if (!room) return;
  ui.title.textContent = `#${room.name}`;
  const users = [...new Set(room.online)].sort((a, b) => a.localeCompare(b));
  ui.online.textContent = room.live ? `${users.length} online` : "offline";
  ui.online.classList.toggle("is-online", room.live && users.length > 0);
  ui.onlineList.replaceChildren(...users.map((user) => {
    const li = el("li", `person ${hueClass(user)}`);
    const dot = el("span", "avatar small", initial(user));
    dot.setAttribute("aria-hidden", "true");
    li.append(dot, el("span", "person-name", user === state.username ? `${user} (you)` : user));
    return li;
  }));
}

function renderTyping() {
  const room = current();
  const names = room ? [...room.typers.keys()] : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  ui.typing.textContent = text;
}

function renderEdge(room) {
  const edge = room.view.edge;
  edge.replaceChildren();
  edge.className = "history-edge";
  if (!room.loaded) {
    edge.textContent = "Loading messages…";
  } else if (room.loadingOlder) {
    edge.textContent = "Loading earlier messages…";
  } else if (room.hasOlder) {
    const more = el("button", "button ghost small",
      room.olderError ? "Couldn't load earlier messages. Try again" : "Load earlier messages");
    more.type = "button";
    more.addEventListener("click", () => loadOlder(room));
    edge.append(more);
  } else {
    edge.classList.add("start");
    edge.append(el("span", "start-title", `#${room.name}`),
      el("span", "start-text", room.view.count
        ? "This is the very beginning of the room."
        : "No messages yet. Say hello!"));
  }
}

function renderTitle() {
  let unread = 0;
  for (const room of state.rooms.values()) unread += room.unread;
  ui.menu.classList.toggle("has-unread", unread > 0);
  const where = state.current ? `#${state.current} · chatd` : "chatd";
  document.title = unread ? `(${unread}) ${where}` : where;
}

function nearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  ui.jump.hidden = true;
}

ui.scroller.addEventListener("scroll", () => {
  const room = current();
  if (!room) return;
  if (ui.scroller.scrollTop < NEAR_TOP_PX) loadOlder(room);
  if (nearBottom()) ui.jump.hidden = true;
}, { passive: true });

ui.jump.addEventListener("click", () => {
  scrollToBottom();
  ui.input.focus();
});

// ---------------------------------------------------------------- composer

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendComposer();
  ui.input.focus();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendComposer();
  }
});

ui.input.addEventListener("input", () => {
  const room = current();
  if (!room) return;
  if (ui.input.value.trim()) typingTick(room);
  else stopTyping(room);
});

// ---------------------------------------------------------------- drawer, toast, dialog

function openDrawer() {
  document.body.classList.add("drawer-open");
  ui.menu.setAttribute("aria-expanded", "true");
  ui.backdrop.hidden = false;
  ui.main.inert = true;
  (ui.sidebar.querySelector(".room-link.active") || ui.newRoom).focus();
}

function closeDrawer() {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  ui.menu.setAttribute("aria-expanded", "false");
  ui.backdrop.hidden = true;
  ui.main.inert = false;
}

ui.menu.addEventListener("click", () => {
  if (document.body.classList.contains("drawer-open")) closeDrawer();
  else openDrawer();
});
ui.backdrop.addEventListener("click", closeDrawer);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("drawer-open")) {
    closeDrawer();
    ui.menu.focus();
  }
});

let toastTimer = 0;
function showError(text) {
  ui.toastText.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, 8_000);
}
ui.toastClose.addEventListener("click", () => {
  ui.toast.hidden = true;
});

function showFieldError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

function openWelcome(changing) {
  if (ui.welcome.open) return;
  ui.welcomeTitle.textContent = changing ? "Change your name" : "Welcome to chatd";
  ui.welcomeIntro.textContent = changing
    ? "Others see this name next to your messages."
    : "Pick a name and a room to start chatting.";
  ui.welcomeRoomField.hidden = changing;
  ui.welcomeCancel.hidden = !changing;
  ui.welcomeSubmit.textContent = changing ? "Save" : "Start chatting";
  ui.welcomeName.value = state.username;
  ui.welcomeRoom.value = storage.get("current", null) || "general";
  showFieldError(ui.welcomeError, "");
  ui.welcome.dataset.mode = changing ? "change" : "first";
  ui.welcome.showModal();
  ui.welcomeName.focus();
}

ui.welcome.addEventListener("cancel", (event) => {
  // Nothing to go back to before the first name is picked.
  if (!state.username) event.preventDefault();
});
ui.welcomeCancel.addEventListener("click", () => ui.welcome.close());

ui.welcomeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.welcomeName.value.trim();
  const changing = ui.welcome.dataset.mode === "change";
  const room = ui.welcomeRoom.value.trim();
  const problem = nameProblem(name, "name", USERNAME_MAX_CHARS) ||
    (changing ? "" : nameProblem(room, "room name", ROOM_MAX_CHARS));
  if (problem) {
    showFieldError(ui.welcomeError, problem);
    return;
  }
  ui.welcome.close();
  const renamed = name !== state.username;
  state.username = name;
  storage.set("username", name);
  renderMe();
  if (!changing) {
    start();
    enterRoom(room);
    ui.input.focus();
  } else if (renamed) {
    saveOutbox();
    // A fresh session re-joins every room under the new name (with since=, so nothing is lost).
    socket.disconnect();
    socket.connect();
  }
  if (changing && current()) ui.input.focus();
});

ui.changeName.addEventListener("click", () => openWelcome(true));

function renderMe() {
  ui.meName.textContent = state.username;
  ui.meAvatar.textContent = initial(state.username || "?");
  ui.meAvatar.className = `avatar ${hueClass(state.username)}`;
}

// ---------------------------------------------------------------- start-up

function start() {
  if (state.started) return;
  state.started = true;
  ui.app.hidden = false;
  renderMe();
  renderBanner();
  for (const name of storage.get("rooms", [])) {
    if (typeof name === "string" && !nameProblem(name, "room", ROOM_MAX_CHARS)) {
      state.rooms.set(name, makeRoom(name));
    }
  }
  restoreOutbox();
  const saved = storage.get("current", null);
  const first = state.rooms.has(saved) ? saved : state.rooms.keys().next().value;
  if (first) switchTo(first);
  else showEmpty();
  renderSidebar();
  socket.connect();
  if (first && !matchMedia("(pointer: coarse)").matches) ui.input.focus();
}

if (state.username && !nameProblem(state.username, "name", USERNAME_MAX_CHARS)) {
  start();
} else {
  state.username = "";
  openWelcome(false);
}
