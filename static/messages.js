// One room's message list in the DOM: ordered by seq, never the same message twice,
// pending (unsent) messages kept at the bottom until their ack gives them a seq.
import { el, fullTime, hueClass, initial, shortTime } from "./util.js";

// Consecutive messages from one person within this long share one header.
const GROUP_GAP_MS = 5 * 60 * 1000;

export class RoomView {
  constructor(room) {
    this.room = room;
    this.edge = el("p", "history-edge");
    this.list = el("ol", "messages");
    this.list.setAttribute("aria-label", `Messages in ${room}`);
    this.bySeq = new Map();
    this.ids = new Set();
    this.minSeq = Infinity;
    this.maxSeq = 0;
  }

  has(msg) {
    return this.ids.has(msg.id) || this.bySeq.has(msg.seq);
  }

  get count() {
    return this.bySeq.size;
  }

  /** Add a confirmed message in seq order; returns its element, or null for a duplicate. */
  insert(msg, own) {
    if (this.has(msg)) return null;
    const node = renderMessage(msg, own);
    this.#place(node, msg);
    return node;
  }

  /** Turn a pending element into the confirmed message `msg` and move it to its place. */
  settle(node, msg) {
    if (this.has(msg)) {
      node.remove();
      return null;
    }
    node.classList.remove("pending", "failed");
    node.querySelector(".status")?.remove();
    node.querySelector(".actions")?.remove();
    setTime(node.querySelector("time"), new Date(msg.timestamp));
    const next = node.nextElementSibling;
    node.remove();
    regroup(next);
    this.#place(node, msg);
    return node;
  }

  addPending(text, user, clientId) {
    const node = renderMessage(
      { user, message: text, timestamp: new Date().toISOString(), client_id: clientId }, true,
    );
    node.classList.add("pending");
    node.append(el("span", "status"));
    this.list.append(node);
    regroup(node);
    return node;
  }

  addNotice(text, timestamp) {
    const node = el("li", "notice");
    node.append(el("span", "notice-text", text));
    const time = el("time");
    setTime(time, new Date(timestamp));
    node.append(time);
    this.list.insertBefore(node, this.list.querySelector(":scope > .pending"));
    regroup(node.nextElementSibling);
    return node;
  }

  #place(node, msg) {
    node.dataset.seq = String(msg.seq);
    node.dataset.id = msg.id;
    this.bySeq.set(msg.seq, node);
    this.ids.add(msg.id);
    let before = null;
    if (msg.seq < this.minSeq) {
      // Older than everything here (a page loaded by scrolling up): it goes first.
      before = this.list.firstElementChild;
    } else {
      // Usually the newest: walk back over pending messages and any newer ones.
      let cur = this.list.lastElementChild;
      while (cur && (cur.classList.contains("pending") ||
                     (cur.dataset.seq && Number(cur.dataset.seq) > msg.seq))) {
        before = cur;
        cur = cur.previousElementSibling;
      }
    }
    this.list.insertBefore(node, before);
    this.minSeq = Math.min(this.minSeq, msg.seq);
    this.maxSeq = Math.max(this.maxSeq, msg.seq);
    regroup(node);
    regroup(node.nextElementSibling);
  }
}

function setTime(time, date) {
  time.dateTime = date.toISOString();
  time.textContent = shortTime(date);
  time.title = fullTime(date);
}

function renderMessage(msg, own) {
  const node = el("li", `msg ${hueClass(msg.user)}${own ? " own" : ""}`);
  node.dataset.user = msg.user;
  node.dataset.time = String(Date.parse(msg.timestamp));
  if (msg.client_id) node.dataset.clientId = msg.client_id;
  node.append(el("span", "avatar", initial(msg.user)));
  node.firstChild.setAttribute("aria-hidden", "true");
  const bubble = el("div", "bubble");
  const meta = el("div", "meta");
  const author = el("span", "author", own ? "You" : msg.user);
  if (own) author.title = msg.user;
  const time = el("time");
  setTime(time, new Date(msg.timestamp));
  meta.append(author, " ", time);
  bubble.append(meta, el("p", "text", msg.message));
  node.append(bubble);
  return node;
}

/** Hide the header of a message that follows one from the same person shortly before. */
function regroup(node) {
  if (!node || !node.classList.contains("msg")) return;
  const prev = node.previousElementSibling;
  const follows = prev && prev.classList.contains("msg") &&
    prev.dataset.user === node.dataset.user &&
    Math.abs(Number(node.dataset.time) - Number(prev.dataset.time)) < GROUP_GAP_MS;
  node.classList.toggle("cont", Boolean(follows));
}
