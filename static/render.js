// A room's message list in the DOM, mirroring its Timeline (messages.js): one <li> per
// entry, with date separators and the "new messages" divider as <li>s of their own just
// above the entry they belong to; an edited message is drawn again with an "edited" mark, a
// deleted one as "message deleted". User text only ever enters as text nodes; links are
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
   * `context()` answers {me, names, label}: who "you" are, the names worth recognising
   * after an "@" (names may contain spaces), and label(userId, name), how to show an author
   * (with a tag when two people in the room share the name).
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
    const hadFocus = old.contains(document.activeElement);
    old.replaceWith(node);
    this.nodes.set(entry.key, node);
    // Grouping under one header depends on both neighbours (a deleted one ends a group).
    this.#decorate(entry);
    const { next } = this.timeline.neighbours(entry);
    if (next) this.#decorate(next);
    if (hadFocus) node.focus();
    return node;
  }

  /**
   * An edit or a deletion (a live event, an ack, or an entry of a history page). Its seq
   * counts as seen either way; answers the redrawn element, or null when nothing shown
   * changed (an older edit, or a message not loaded).
   */
  applyChange(change) {
    const entry = change.type === "delete"
      ? this.timeline.applyDelete(change)
      : this.timeline.applyEdit(change);
    return entry ? this.rerender(entry.id) : null;
  }

  /** Own-ness is known now (or changed): redraw the messages it changes. */
  reown(isMine) {
    for (const entry of this.timeline.reown(isMine)) this.rerender(entry.id);
  }

  /** Someone sharing a name came or went: show each author with the label that tells them apart. */
  relabel() {
    const { label } = this.context();
    for (const entry of this.timeline.entries) {
      if (entry.kind !== "msg" || entry.own || entry.deleted) continue;
      const author = this.nodes.get(entry.key)?.querySelector(".author");
      if (author) author.textContent = label(entry.userId, entry.user);
    }
  }

  /** Moderators get the message menu on everyone's messages, others only on their own. */
  setModerating(on) {
    this.list.classList.toggle("moderating", Boolean(on));
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
    if (entry.deleted) return this.#renderDeleted(entry);
    const context = this.context();
    // The colour follows the identity, so two people called "sam" differ at a glance too.
    const node = el("li", `msg ${hueClass(entry.userId || entry.user)}${entry.own ? " own" : ""}`);
    node.tabIndex = -1;
    node.dataset.user = entry.user;
    if (entry.userId) node.dataset.userId = entry.userId;
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
    const shownAs = entry.own ? "You" : context.label(entry.userId, entry.user);
    const author = el("span", "author", shownAs);
    if (entry.own || shownAs !== entry.user) author.title = entry.user;
    const time = el("time");
    setTime(time, entry.time);
    meta.append(author, " ", time);
    if (entry.editedAt) {
      const edited = el("span", "edited", "(edited)");
      edited.title = `Edited ${fullTime(new Date(entry.editedAt))}`;
      meta.append(" ", edited);
    }
    if (entry.kind === "msg") meta.append(menuButton(entry.own ? "your message" : shownAs));
    const text = el("p", "text");
    text.append(richText(entry.text, context));
    if (!entry.own && text.querySelector(".mention.you")) node.classList.add("mentions-me");
    bubble.append(meta, text);
    node.append(avatar, bubble);
    return node;
  }

  /** What is left of a deleted message: its place and time, no text and no author. */
  #renderDeleted(entry) {
    const node = el("li", "msg deleted");
    node.tabIndex = -1;
    node.dataset.seq = String(entry.seq);
    node.dataset.id = entry.id;
    const avatar = el("span", "avatar", "×");
    avatar.setAttribute("aria-hidden", "true");
    const bubble = el("div", "bubble");
    const meta = el("div", "meta");
    const time = el("time");
    setTime(time, entry.time);
    meta.append(time);
    bubble.append(meta, el("p", "text deleted-text", "message deleted"));
    node.append(avatar, bubble);
    return node;
  }
}

/** The button that opens a message's menu (Edit, Delete); → reaches it from the message. */
function menuButton(whose) {
  const button = el("button", "msg-menu", "⋯");
  button.type = "button";
  button.tabIndex = -1;
  button.setAttribute("aria-haspopup", "menu");
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-label", `Actions for ${whose}`);
  return button;
}
