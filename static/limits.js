// The server's limits (GET api/limits) and the checks the client makes with them before it
// sends anything. Pure apart from `loadLimits`, which takes the fetch to use.

export const DEFAULT_LIMITS = Object.freeze({
  message_chars: 2000,
  room_chars: 64,
  username_chars: 32,
  name_rule: "Letters, digits, spaces, '-', '.' and '_'.",
  edit_minutes: 15, // how long its author may edit a message (0: no edits)
});

/** The limits in `body`, each one that is missing or malformed replaced by its default. */
export function parseLimits(body) {
  const limits = { ...DEFAULT_LIMITS };
  if (!body || typeof body !== "object") return limits;
  for (const key of ["message_chars", "room_chars", "username_chars"]) {
    const value = body[key];
    if (Number.isInteger(value) && value > 0) limits[key] = value;
  }
  if (Number.isInteger(body.edit_minutes) && body.edit_minutes >= 0) {
    limits.edit_minutes = body.edit_minutes;
  }
  if (typeof body.name_rule === "string" && body.name_rule.trim()) {
    limits.name_rule = body.name_rule.trim();
  }
  return limits;
}

/** Ask the server; on any failure the defaults, so the client still works. */
export async function loadLimits(fetchFn = globalThis.fetch, timeoutMs = 5_000) {
  try {
    const res = await fetchFn("api/limits", {
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) return parseLimits(null);
    return parseLimits(await res.json());
  } catch {
    return parseLimits(null);
  }
}

/** Length as the server counts it: code points, not UTF-16 units. */
export function charCount(text) {
  return [...text].length;
}

/**
 * The one spelling the server keeps a name in (Unicode NFKC): "café" typed with a combining
 * accent, or in fullwidth letters, is the same room, and the client must call it the same.
 */
export function canonicalName(name) {
  return typeof name === "string" ? name.normalize("NFKC") : name;
}

/**
 * What the client itself can say about a name before asking the server: empty or too long.
 * Which characters are allowed is the server's business; it answers with its own words.
 */
export function nameProblem(name, what, maxChars) {
  if (!name) return `Please enter a ${what}.`;
  if (charCount(name) > maxChars) {
    return `“${name}” is too long: a ${what} can be at most ${maxChars} characters.`;
  }
  return "";
}

/** Shown from this many characters left, so the limit never comes as a surprise. */
export function warnFrom(maxChars) {
  return Math.max(20, Math.ceil(maxChars / 10));
}

/** The composer's counter: hidden far from the limit, then characters left, then over. */
export function counter(text, maxChars) {
  const length = charCount(text);
  const left = maxChars - length;
  const over = left < 0;
  const shown = left <= warnFrom(maxChars);
  let label = "";
  if (over) label = `${-left} ${-left === 1 ? "character" : "characters"} too many`;
  else if (shown) label = `${left} ${left === 1 ? "character" : "characters"} left`;
  return { length, left, over, shown, label };
}
