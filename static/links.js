// Web addresses in message text. Pure: no DOM. Only http: and https: become links; the
// renderer builds them with DOM APIs (an <a> whose text is the address as typed).

// A candidate runs from the scheme to the next space or character that cannot end a URL in
// running text; trailing punctuation is trimmed afterwards.
const CANDIDATE = /\bhttps?:\/\/[^\s<>"'`\u00a0\u2000-\u200f\u2028-\u202f\u3000]+/giu;
const TRAILING = /[.,;:!?…'"»”’)\]}>*_~-]$/u;
const PAIRS = { ")": "(", "]": "[", "}": "{" };

function count(text, ch) {
  let n = 0;
  for (const c of text) if (c === ch) n += 1;
  return n;
}

/** Drop punctuation that ends the sentence rather than the address: "(see https://a.b/x)." */
function trimEnd(url) {
  let end = url;
  while (TRAILING.test(end)) {
    const last = end[end.length - 1];
    const open = PAIRS[last];
    // A closing bracket that closes one inside the address stays: https://w.org/A_(b)
    if (open && count(end, open) >= count(end, last)) break;
    end = end.slice(0, -1);
  }
  return end;
}

/** The href for `raw`, or null unless it is an absolute http(s) URL with a host. */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (!url.hostname) return null;
  return url.href;
}

/** Every link in `text`: [{start, end, text, href}], in order, not overlapping. */
export function findLinks(text) {
  const found = [];
  for (const match of text.matchAll(CANDIDATE)) {
    const raw = trimEnd(match[0]);
    const href = safeHref(raw);
    if (href && raw.length > raw.indexOf("//") + 2) {
      found.push({ start: match.index, end: match.index + raw.length, text: raw, href });
    }
  }
  return found;
}

/** `text` cut into pieces: {text} for plain text and {text, href} for a link. */
export function splitLinks(text) {
  const parts = [];
  let at = 0;
  for (const link of findLinks(text)) {
    if (link.start > at) parts.push({ text: text.slice(at, link.start) });
    parts.push({ text: link.text, href: link.href });
    at = link.end;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}
