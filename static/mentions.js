// @name mentions in message text. Pure: no DOM. Names may contain spaces, so a mention is
// matched against the names the client knows (longest first), else as one word.

const NAME_CHAR = /[\p{L}\p{N}_.-]/u;
const WORD = /^[\p{L}\p{N}_][\p{L}\p{N}_.-]*/u;
const RUN = /^[\p{L}\p{N}_.-]*/u;
const WORD_CHAR = /[\p{L}\p{N}_]/u;

const fold = (s) => s.toLocaleLowerCase();

function isNameChar(ch) {
  return ch !== undefined && NAME_CHAR.test(ch);
}

/** Ends with '.' or '-' that belong to the sentence ("thanks @bob.") rather than the name. */
function trimWord(word) {
  return word.replace(/[.-]+$/u, "");
}

/**
 * Every mention in `text`: [{start, end, name}] where `name` is spelled as in `names` when it
 * is one of them (compared case-insensitively), else as written.
 */
export function findMentions(text, names = []) {
  const known = [...new Set(names.filter(Boolean))].sort((a, b) => b.length - a.length);
  const found = [];
  let i = text.indexOf("@");
  while (i !== -1) {
    const before = i > 0 ? text[i - 1] : undefined;
    let end = -1;
    let name = "";
    if (!isNameChar(before) && before !== "@") {
      const rest = text.slice(i + 1);
      for (const candidate of known) {
        const piece = rest.slice(0, candidate.length);
        if (fold(piece) !== fold(candidate)) continue;
        // The name must end there ("@ann" is not "@anna"), but may be followed by the
        // sentence's own '.' or '-' ("thanks @ann.").
        const run = rest.slice(candidate.length).match(RUN)[0];
        if (WORD_CHAR.test(run)) continue;
        end = i + 1 + candidate.length;
        name = candidate;
        break;
      }
      if (end === -1) {
        const word = trimWord(rest.match(WORD)?.[0] ?? "");
        if (word) {
          end = i + 1 + word.length;
          name = word;
        }
      }
    }
    if (end !== -1) {
      found.push({ start: i, end, name });
      i = text.indexOf("@", end);
    } else {
      i = text.indexOf("@", i + 1);
    }
  }
  return found;
}

/** True when `text` mentions `name` (case-insensitively). */
export function mentions(text, name) {
  if (!name || !text.includes("@")) return false;
  return findMentions(text, [name]).some((m) => fold(m.name) === fold(name));
}

/** `text` cut into pieces: {text} and {text, mention: name}. */
export function splitMentions(text, names = []) {
  const parts = [];
  let at = 0;
  for (const m of findMentions(text, names)) {
    if (m.start > at) parts.push({ text: text.slice(at, m.start) });
    parts.push({ text: text.slice(m.start, m.end), mention: m.name });
    at = m.end;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}
