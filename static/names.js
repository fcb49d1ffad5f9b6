// Telling people apart when they share a display name. Names need not be unique, identities
// (user_id) are: two people called "sam" in one room show as "sam · k3f9" and "sam · 0q2c",
// the tag a short hash of the user_id, so it is the same in every browser and after a
// reload. A name nobody else in the room has shows as it is. Pure: no DOM.

const TAG_CHARS = 4;
const fold = (name) => name.normalize("NFKC").toLocaleLowerCase();

/** A stable base-36 string for `userId` (two FNV-1a passes: 12 characters or so). */
export function idHash(userId) {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (const ch of userId) {
    const code = ch.codePointAt(0);
    a = Math.imul(a ^ code, 0x01000193) >>> 0;
    b = Math.imul(b ^ code, 0x811c9dc5) >>> 0;
  }
  return a.toString(36).padStart(7, "0") + b.toString(36).padStart(7, "0");
}

/**
 * The identities known in one room (who is online, who wrote what is shown), by name, so
 * a label says which "sam" a message or a person in the online list is.
 */
export class Namebook {
  constructor() {
    this.byName = new Map(); // folded name -> Set of user ids
  }

  /** Remember that `userId` goes by `name`; true when some label changes because of it. */
  learn(userId, name) {
    if (typeof userId !== "string" || !userId || typeof name !== "string" || !name) return false;
    const key = fold(name);
    let ids = this.byName.get(key);
    if (!ids) {
      ids = new Set();
      this.byName.set(key, ids);
    }
    if (ids.has(userId)) return false;
    ids.add(userId);
    return ids.size > 1;
  }

  /** Whether another identity in the room goes by the same name. */
  shared(userId, name) {
    const ids = typeof name === "string" ? this.byName.get(fold(name)) : undefined;
    if (!ids) return false;
    return ids.size > 1 || (Boolean(userId) && !ids.has(userId) && ids.size > 0);
  }

  /** The short tag for `userId` among those sharing `name`: long enough to be unique. */
  tag(userId, name) {
    const mine = idHash(userId);
    const others = [...(this.byName.get(fold(name)) || [])]
      .filter((id) => id !== userId).map(idHash);
    let length = TAG_CHARS;
    while (length < mine.length && others.some((h) => h.slice(0, length) === mine.slice(0, length))) {
      length += 1;
    }
    return mine.slice(0, length);
  }

  /** How to show `name` written by `userId`: the name, with a tag when it is shared. */
  label(userId, name) {
    if (typeof name !== "string") return "";
    if (!userId || !this.shared(userId, name)) return name;
    return `${name} · ${this.tag(userId, name)}`;
  }
}

/**
 * Who is online from a `presence` event or a join ack: `members` [{user_id, name, role}],
 * or for a server without identities the names in `users` (or the ack's `online`).
 */
export function membersOf(data) {
  if (!data || typeof data !== "object") return [];
  if (Array.isArray(data.members)) {
    // A member without an identity (user_id null) still counts as someone online.
    return data.members
      .filter((m) => m && typeof m.name === "string")
      .map((m) => ({
        user_id: typeof m.user_id === "string" ? m.user_id : "", name: m.name,
        role: typeof m.role === "string" ? m.role : "member",
      }));
  }
  const names = Array.isArray(data.users) ? data.users : data.online;
  if (!Array.isArray(names)) return [];
  return [...new Set(names.filter((n) => typeof n === "string"))]
    .sort((a, b) => a.localeCompare(b))
    .map((name) => ({ user_id: "", name, role: "member" }));
}
