// Dates and times as the client shows them. Pure: no DOM, importable by Node's test runner.
// Each function takes an optional locale (the browser's by default) so tests can pin one.

const formats = new Map();

function format(locale, options) {
  const key = `${locale || ""}|${JSON.stringify(options)}`;
  let fmt = formats.get(key);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat(locale, options);
    formats.set(key, fmt);
  }
  return fmt;
}

/** True when both dates fall on the same local calendar day. */
export function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate();
}

/** The local calendar day of `date` as "YYYY-MM-DD", for comparing days cheaply. */
export function dayKey(date) {
  const month = String(date.getMonth() + 1).padStart(2, "0");
  const day = String(date.getDate()).padStart(2, "0");
  return `${date.getFullYear()}-${month}-${day}`;
}

/** "Today", "Yesterday", "Monday, March 3", or with the year when it is not this year. */
export function dayLabel(date, now = new Date(), locale = undefined) {
  if (sameDay(date, now)) return "Today";
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (sameDay(date, yesterday)) return "Yesterday";
  const options = { weekday: "long", month: "long", day: "numeric" };
  if (date.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return format(locale, options).format(date);
}

/** The time of day of a message: "14:05" or "2:05 PM", as the locale writes it. */
export function clockTime(date, locale = undefined) {
  return format(locale, { hour: "2-digit", minute: "2-digit" }).format(date);
}

/** Date and time in full, for a tooltip. */
export function fullTime(date, locale = undefined) {
  return format(locale, { dateStyle: "full", timeStyle: "medium" }).format(date);
}

const relative = new Map();

/** "now", "5 min ago", "3 hr ago", "2 days ago" for the room list; a date after 30 days. */
export function relativeTime(date, now = Date.now(), locale = undefined) {
  const secs = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(secs);
  if (abs < 45) return "now";
  let rtf = relative.get(locale || "");
  if (!rtf) {
    rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto", style: "narrow" });
    relative.set(locale || "", rtf);
  }
  if (abs < 3600) return rtf.format(Math.round(secs / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(secs / 3600), "hour");
  if (abs < 86400 * 30) return rtf.format(Math.round(secs / 86400), "day");
  return format(locale, { month: "short", day: "numeric" }).format(date);
}
