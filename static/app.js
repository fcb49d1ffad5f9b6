// chatd browser client: wires the parts together. Rooms and their messages: rooms.js
// (with outbox.js, render.js, messages.js); the connection: connection.js; who you are:
// identity.js; the room list: sidebar.js; the room on screen: pane.js; the message box:
// composer.js; the menus on messages and people: message-actions.js, member-actions.js
// (with menu.js); dialogs and toasts: dialogs.js; mentions outside the page: notify.js.
// All user text goes in as text.
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
import { AskDialog, Toast, WelcomeDialog } from "./dialogs.js";
import { apiFetch, identity } from "./identity.js";
import { DEFAULT_LIMITS, canonicalName, loadLimits, nameProblem } from "./limits.js";
import { MemberActions } from "./member-actions.js";
import { PopupMenu } from "./menu.js";
import { MessageActions } from "./message-actions.js";
import { Notifier, pageTitle } from "./notify.js";
import { RoomPane } from "./pane.js";
import { Rooms } from "./rooms.js";
import { Directory, Sidebar } from "./sidebar.js";
import { everyFrame, hueClass, initial, newClientId, storage } from "./util.js";

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"), main: $("main"), sidebar: $("sidebar"), backdrop: $("backdrop"),
  menu: $("menu-button"), skip: $("skip-link"),
  filterField: $("room-filter-field"), filter: $("room-filter"),
  newRoomForm: $("new-room-form"), newRoom: $("new-room"), newRoomError: $("new-room-error"),
  joined: $("joined-rooms"), noJoined: $("no-joined-rooms"),
  others: $("other-rooms"), noOthers: $("no-other-rooms"),
  meName: $("me-name"), meAvatar: $("me-avatar"), changeName: $("change-name"),
  title: $("room-title"), online: $("room-online"), onlineList: $("online-list"),
  notify: $("notify-toggle"), banner: $("banner"), scroller: $("scroller"), jump: $("jump"),
  typing: $("typing"), composer: $("composer"), input: $("message"), send: $("send"),
  counter: $("counter"), composerStatus: $("composer-status"), messageLabel: $("message-label"),
  toast: $("toast"), toastText: $("toast-text"), toastClose: $("toast-close"),
  welcome: $("welcome"), welcomeForm: $("welcome-form"), welcomeTitle: $("welcome-title"),
  welcomeIntro: $("welcome-intro"), welcomeName: $("welcome-name"),
  welcomeNameHelp: $("welcome-name-help"), welcomeRoom: $("welcome-room"),
  welcomeRoomField: $("welcome-room-field"), welcomeError: $("welcome-error"),
  welcomeCancel: $("welcome-cancel"), welcomeSubmit: $("welcome-submit"),
  ask: $("ask"), askForm: $("ask-form"), askTitle: $("ask-title"), askText: $("ask-text"),
  askMinutesField: $("ask-minutes-field"), askMinutes: $("ask-minutes"),
  askError: $("ask-error"), askCancel: $("ask-cancel"), askConfirm: $("ask-confirm"),
};

// A login brought us here with #token=...: keep it, and take it out of the address bar.
identity.takeFromAddress();

const app = {
  username: storage.get("username", ""),
  limits: { ...DEFAULT_LIMITS },
  started: false,
  signedIn: false, // the server accepted the name at least once
};

const conn = new Connection(window.io, identity);
const toast = new Toast(ui);
const pane = new RoomPane(ui, { onNearTop: (room) => rooms.loadOlder(room) });
const directory = new Directory(() => changed());
const rooms = new Rooms(conn, () => app.username, {
  pane,
  changed: () => changed(),
  joined: () => {
    app.signedIn = true;
  },
  activity: (name, timestamp) => directory.activity(name, timestamp),
  presence: (name, count) => directory.setOnline(name, count),
  roomsChanged: () => directory.refreshSoon(),
  mention: (room, msg) => notifier.mention(room, msg,
    room === rooms.current && !document.hidden && document.hasFocus()),
  nameRefused: (message) => welcome.show({
    first: !app.signedIn, required: true, name: app.username,
    room: rooms.currentName || "general",
    error: `The server refused the name “${app.username}”: ${message}`,
  }),
  error: (text) => toast.show(text),
  session: () => sessionChanged(),
  limits: () => app.limits,
});
const notifier = new Notifier(ui.notify, (name) => enter(name));
const composer = new Composer(ui, {
  send: (text) => rooms.send(text, newClientId()),
  typed: (nonEmpty) => rooms.typed(nonEmpty),
});
const sidebar = new Sidebar(ui, {
  show: enter,
  join: enter,
  leave: (name) => {
    rooms.leave(name);
    directory.refreshSoon();
  },
  create: createFromSidebar,
  refilter: () => renderSidebar(),
});
const welcome = new WelcomeDialog(ui, submitWelcome);
const menu = new PopupMenu();
const ask = new AskDialog(ui);
new MessageActions(ui, { rooms, menu, ask, limits: () => app.limits });
new MemberActions(ui, { rooms, menu, ask, toast });

// ---------------------------------------------------------------- what changes together

function renderSidebar() {
  sidebar.render(rooms, directory, rooms.currentName, conn.connected);
}
const renderSidebarSoon = everyFrame(renderSidebar);

function renderTitle() {
  let unread = 0;
  let mentioned = 0;
  for (const room of rooms) {
    unread += room.unread.count;
    mentioned += room.unread.mentions;
  }
  ui.menu.classList.toggle("has-unread", unread > 0);
  document.title = pageTitle(rooms.currentName, unread, mentioned);
}

/** Rooms, unread counts, presence or the room on screen changed. */
function changed() {
  composer.setRoom(rooms.currentName, rooms.blockedReason(rooms.current));
  renderTitle();
  renderSidebarSoon();
}

function renderBanner(status) {
  ui.banner.dataset.state = status;
  document.body.dataset.conn = status;
  const later = " Messages you write are kept and sent when the connection is back.";
  if (status === "online") {
    ui.banner.hidden = true;
    ui.banner.textContent = "";
  } else if (status === "signin") {
    ui.banner.hidden = false;
    ui.banner.textContent = "This chat needs you to sign in: open it from your sign-in page," +
      " which brings you back here signed in.";
  } else if (status === "offline") {
    ui.banner.hidden = false;
    ui.banner.textContent = "You are offline." + later;
  } else if (status === "reconnecting") {
    ui.banner.hidden = false;
    const attempt = conn.attempt > 1 ? ` (attempt ${conn.attempt})` : "";
    ui.banner.textContent = `Connection lost. Reconnecting…${attempt}` + later;
  } else {
    ui.banner.hidden = false;
    ui.banner.textContent = "Connecting…";
  }
}

conn.onStatus((status, wasChange) => {
  renderBanner(status);
  if (wasChange && status === "online") directory.refresh();
  if (wasChange) changed();
});

document.addEventListener("visibilitychange", () => {
  if (!app.started) return;
  if (document.hidden) rooms.away();
  else rooms.seen();
});

// ---------------------------------------------------------------- rooms

function enter(name) {
  rooms.enter(name);
  closeDrawer();
  composer.focus();
}

/** The join box: the server says whether the name is a room name (joining creates it). */
async function createFromSidebar(typed) {
  const name = canonicalName(typed);
  const problem = nameProblem(name, "room name", app.limits.room_chars) ||
    await rooms.open(name);
  if (problem) return problem;
  closeDrawer();
  composer.focus();
  directory.refreshSoon();
  return "";
}

// ---------------------------------------------------------------- name and start-up

// How long the first sign-in waits for the server to accept name and room before it
// starts anyway (the banner then says what is going on).
const SIGN_IN_WAIT_MS = 8_000;

async function submitWelcome({ name: typedName, room: typedRoom, first }) {
  const name = canonicalName(typedName);
  const room = canonicalName(typedRoom);
  const problem = nameProblem(name, "name", app.limits.username_chars) ||
    (first ? nameProblem(room, "room name", app.limits.room_chars) : "");
  if (problem) return problem;
  const renamed = name !== app.username;
  app.username = name;
  if (!first) {
    // A fresh session joins every room under the new name (with since=, so nothing is
    // lost); the dialog comes back with the server's words if it refuses the name.
    storage.set("username", name);
    renderMe();
    if (renamed) {
      rooms.saveOutbox();
      conn.restart();
    }
    welcome.close();
    if (rooms.current) composer.focus();
    return "";
  }
  // First sign-in: the dialog stays until the server accepts the name and the room.
  start();
  await conn.whenConnected(SIGN_IN_WAIT_MS);
  const refused = await rooms.open(room);
  if (refused) return refused;
  storage.set("username", name);
  renderMe();
  rooms.joinAll();
  rooms.saveOutbox();
  welcome.close();
  closeDrawer();
  composer.focus();
  return "";
}

/**
 * The server said who this page is. In sign-in mode the login's token fixes the name: it is
 * shown, used, and cannot be changed here.
 */
function sessionChanged() {
  const name = identity.fixedName;
  ui.changeName.hidden = Boolean(name);
  if (!name) return;
  if (name !== app.username) {
    app.username = name;
    storage.set("username", name);
    renderMe();
  }
  if (!app.started) {
    welcome.close();
    start();
  }
}

function renderMe() {
  ui.meName.textContent = app.username;
  ui.meAvatar.textContent = initial(app.username || "?");
  ui.meAvatar.className = `avatar ${hueClass(app.username)}`;
}

function start() {
  if (app.started) return;
  app.started = true;
  ui.app.hidden = false;
  renderMe();
  for (const saved of storage.get("rooms", [])) {
    const name = canonicalName(saved);
    if (typeof name === "string" && !nameProblem(name, "room", app.limits.room_chars)) {
      rooms.add(name);
    }
  }
  rooms.restoreOutbox();
  const saved = storage.get("current", null);
  const first = rooms.has(saved) ? saved : [...rooms][0]?.name;
  if (first) rooms.show(first);
  else pane.showEmpty();
  changed();
  conn.start();
  directory.poll(() => app.started && conn.connected);
  if (first && !matchMedia("(pointer: coarse)").matches) composer.focus();
}

ui.changeName.addEventListener("click", () => welcome.show({
  first: false, required: false, name: app.username, room: "",
}));

welcome.setRule(app.limits.name_rule);
loadLimits(apiFetch).then((limits) => {
  app.limits = limits;
  composer.setLimit(limits.message_chars);
  welcome.setRule(limits.name_rule);
});

// ---------------------------------------------------------------- drawer and keys

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

const drawerOpen = () => document.body.classList.contains("drawer-open");
const narrow = matchMedia("(max-width: 760px)");

ui.menu.addEventListener("click", () => (drawerOpen() ? closeDrawer() : openDrawer()));
ui.backdrop.addEventListener("click", closeDrawer);

ui.skip.addEventListener("click", (event) => {
  event.preventDefault();
  closeDrawer();
  if (ui.input.disabled) ui.scroller.focus();
  else composer.focus();
});

/** Alt+↑ / Alt+↓: the previous or next of your rooms. */
function stepRoom(delta) {
  const names = [...rooms].map((room) => room.name);
  if (!names.length) return;
  const i = names.indexOf(rooms.currentName);
  const next = names[(i + delta + names.length) % names.length];
  rooms.show(next);
  composer.focus();
}

document.addEventListener("keydown", (event) => {
  if (!app.started || welcome.open) return;
  if (event.key === "Escape" && drawerOpen()) {
    closeDrawer();
    ui.menu.focus();
  } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    stepRoom(event.key === "ArrowUp" ? -1 : 1);
  } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
    // Find a room: the filter when there is one, else the join box.
    event.preventDefault();
    if (narrow.matches && !drawerOpen()) openDrawer();
    (ui.filterField.hidden ? ui.newRoom : ui.filter).focus();
  }
});

if (app.username && !nameProblem(app.username, "name", app.limits.username_chars)) {
  start();
} else if (identity.signIn) {
  // Sign-in mode: the name comes with the session, no need to ask for one.
  start();
} else {
  app.username = "";
  welcome.show({
    first: true, required: true, name: "", room: storage.get("current", null) || "general",
  });
}
