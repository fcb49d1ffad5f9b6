// A room's message list in the DOM, mirroring its Timeline (messages.js): one <li> per
// entry, with date separators and the "new messages" divider as <li>s of their own just
// above the entry they belong to. User text only ever enters as text nodes; links are
// <a> elements built here for http(s) addresses only.
import { Timeline, continues, startsDay } from "./messages.js";
import { splitLinks } from "./links.js";
import { splitMentions } from "./mentions.js";
import { clockTime, dayLabel, fullTime } from "./time.js";
import { el, hueClass, initial } from "./util.js";

/** Message text with its links and @mentions: a fragment of text nodes, <a> and <span>. */
export function richText(text, { me = "", names = [] } = {}) {
  const fragment = document.createDocumentFragment();
  const fold = me.toLocaleLowerCase();
  for (const part of splitLinks(text)) {
    if (part.href) {
      const link = el("a", "link", part.text);
      link.href = part.href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      fragment.append(link);
      continue;
    }
    for (const piece of splitMentions(part.text, [me, ...names])) {
      if (piece.mention) {
        const own = piece.mention.toLocaleLowerCase() === fold;
        fragment.append(el("span", own ? "mention you" : "mention", piece.text));
      } else {
        fragment.append(piece.text);
      }
    }
  }
  return fragment;
}

function setTime(time, ms) {
  const date = new Date(ms);
  time.dateTime = date.toISOString();
  time.textContent = clockTime(date);
  time.title = fullTime(date);
}

export class RoomView {
  /**
   * `context()` answers {me, names}: who "you" are and the names worth recognising after an
   * "@" (names may contain spaces).
   */
  constructor(room, context) {
    this.room = room;
    this.context = context;
    this.timeline = new Timeline();
    this.edge = el("p", "history-edge");
    this.list = el("ol", "messages");
    this.list.setAttribute("aria-label", `Messages in ${room}`);
    this.nodes = new Map(); // entry key -> <li>
    this.unread = null; // the entry the "new messages" divider sits above
  }

  get count() {
    return this.timeline.count;
  }

  get minSeq() {
    return this.timeline.minSeq;
  }

  get maxSeq() {
    return this.timeline.maxSeq;
  }

  has(msg) {
    return this.timeline.has(msg);
  }

  /** Add a confirmed message in its place; returns its element, or null for a duplicate. */
  insert(msg, own) {
    const entry = this.timeline.addMessage(msg, own);
    return entry ? this.#mount(entry) : null;
  }

  /** The ack or the broadcast of a pending message came: it becomes the stored one. */
  settle(clientId, msg) {
    const pending = this.timeline.pending(clientId);
    if (pending) this.#unmount(pending);
    return this.insert(msg, true);
  }

  addPending(text, user, clientId) {
    return this.#mount(this.timeline.addPending(text, user, clientId));
  }

  discardPending(clientId) {
    const pending = this.timeline.pending(clientId);
    if (pending) this.#unmount(pending);
  }

  pendingNode(clientId) {
    const entry = this.timeline.pending(clientId);
    return entry ? this.nodes.get(entry.key) : null;
  }

  addNotice(text, timestamp) {
    return this.#mount(this.timeline.addNotice(text, timestamp));
  }

  /** Draw one message again from its entry (after an edit, or when it is deleted). */
  rerender(id) {
    const entry = this.timeline.byId.get(id);
    const old = entry && this.nodes.get(entry.key);
    if (!old) return null;
    const node = this.#render(entry);
    node.className = old.className;
    old.replaceWith(node);
    this.nodes.set(entry.key, node);
    return node;
  }

  /** Put the "new messages" divider above the first message after `seq` (none: remove). */
  markUnreadAfter(seq) {
    const previous = this.unread;
    this.unread = seq === null ? null : this.timeline.firstUnreadAfter(seq);
    if (previous !== this.unread) {
      if (previous) this.#decorate(previous);
      if (this.unread) this.#decorate(this.unread);
    }
    return this.unread ? this.nodes.get(this.unread.key) : null;
  }

  /** The element of an entry, or null. */
  nodeOf(entry) {
    return (entry && this.nodes.get(entry.key)) || null;
  }

  #mount(entry) {
    const node = this.#render(entry);
    this.nodes.set(entry.key, node);
    const { next } = this.timeline.neighbours(entry);
    const nextNode = this.nodeOf(next);
    this.list.insertBefore(node, nextNode ? this.#lead(nextNode) : null);
    this.#decorate(entry);
    if (next) this.#decorate(next);
    return node;
  }

  #unmount(entry) {
    const { next } = this.timeline.neighbours(entry);
    const node = this.nodes.get(entry.key);
    this.timeline.remove(entry);
    this.nodes.delete(entry.key);
    if (this.unread === entry) this.unread = null;
    if (node) {
      this.#clearDecorations(node);
      node.remove();
    }
    if (next) this.#decorate(next);
  }

  /** The first of the separators that belong to `node`, or `node` itself. */
  #lead(node) {
    let lead = node;
    while (lead.previousElementSibling?.classList.contains("deco")) {
      lead = lead.previousElementSibling;
    }
    return lead;
  }

  #clearDecorations(node) {
    while (node.previousElementSibling?.classList.contains("deco")) {
      node.previousElementSibling.remove();
    }
  }

  /** Date separator and unread divider above `entry`, and whether it continues a group. */
  #decorate(entry) {
    const node = this.nodes.get(entry.key);
    if (!node) return;
    const { prev } = this.timeline.neighbours(entry);
    const wanted = [];
    if (startsDay(prev, entry)) wanted.push(`day:${dayLabel(new Date(entry.time))}`);
    if (entry === this.unread) wanted.push("unread");
    const have = [];
    for (let n = node.previousElementSibling; n?.classList.contains("deco");
      n = n.previousElementSibling) {
      have.unshift(n.dataset.deco);
    }
    if (have.join("|") !== wanted.join("|")) {
      this.#clearDecorations(node);
      for (const deco of wanted) node.before(this.#decoration(deco));
    }
    if (entry.kind !== "notice") node.classList.toggle("cont", continues(prev, entry));
  }

  #decoration(deco) {
    if (deco === "unread") {
      const li = el("li", "deco unread-divider");
      li.dataset.deco = deco;
      li.append(el("span", "unread-label", "New messages"));
      return li;
    }
    const li = el("li", "deco day");
    li.dataset.deco = deco;
    li.append(el("span", "day-label", deco.slice(4)));
    return li;
  }

  #render(entry) {
    if (entry.kind === "notice") {
      const node = el("li", "notice");
      node.append(el("span", "notice-text", entry.text));
      const time = el("time");
      setTime(time, entry.time);
      node.append(time);
      return node;
    }
    const context = this.context();
    const node = el("li", `msg ${hueClass(entry.user)}${entry.own ? " own" : ""}`);
    node.tabIndex = -1;
    node.dataset.user = entry.user;
    if (entry.kind === "msg") {
      node.dataset.seq = String(entry.seq);
      node.dataset.id = entry.id;
    } else {
      node.classList.add("pending");
    }
    if (entry.clientId) node.dataset.clientId = entry.clientId;
    const avatar = el("span", "avatar", initial(entry.user));
    avatar.setAttribute("aria-hidden", "true");
    const bubble = el("div", "bubble");
    const meta = el("div", "meta");
    const author = el("span", "author", entry.own ? "You" : entry.user);
    if (entry.own) author.title = entry.user;
    const time = el("time");
    setTime(time, entry.time);
    meta.append(author, " ", time);
    const text = el("p", "text");
    text.append(richText(entry.text, context));
    if (!entry.own && text.querySelector(".mention.you")) node.classList.add("mentions-me");
    bubble.append(meta, text);
    node.append(avatar, bubble);
    return node;
  }
}
