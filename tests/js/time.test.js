// Time and date formatting (static/time.js), with a fixed locale.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { clockTime, dayKey, dayLabel, relativeTime, sameDay } from "../../static/time.js";

const NOW = new Date(2026, 2, 4, 12, 0); // Wednesday, March 4, 2026, local time

describe("dayLabel", () => {
  it("says Today and Yesterday", () => {
    assert.equal(dayLabel(new Date(2026, 2, 4, 0, 0), NOW, "en-US"), "Today");
    assert.equal(dayLabel(new Date(2026, 2, 4, 23, 59), NOW, "en-US"), "Today");
    assert.equal(dayLabel(new Date(2026, 2, 3, 23, 59), NOW, "en-US"), "Yesterday");
    assert.equal(dayLabel(new Date(2026, 2, 3, 0, 0), NOW, "en-US"), "Yesterday");
  });

  it("names older days with their date, and the year when it is another", () => {
    assert.equal(dayLabel(new Date(2026, 2, 2, 9, 0), NOW, "en-US"), "Monday, March 2");
    assert.equal(dayLabel(new Date(2025, 11, 31, 9, 0), NOW, "en-US"),
      "Wednesday, December 31, 2025");
    assert.equal(dayLabel(new Date(2026, 2, 2, 9, 0), NOW, "de-DE"), "Montag, 2. März");
  });

  it("handles Yesterday across a month and a year", () => {
    const newYear = new Date(2026, 0, 1, 8, 0);
    assert.equal(dayLabel(new Date(2025, 11, 31, 20, 0), newYear, "en-US"), "Yesterday");
    const firstOfMarch = new Date(2026, 2, 1, 8, 0);
    assert.equal(dayLabel(new Date(2026, 1, 28, 20, 0), firstOfMarch, "en-US"), "Yesterday");
  });
});

describe("clockTime", () => {
  it("writes the time as the locale does", () => {
    const t = new Date(2026, 2, 4, 14, 5);
    assert.equal(clockTime(t, "en-GB"), "14:05");
    assert.match(clockTime(t, "en-US"), /^02:05\s?PM$/);
  });
});

describe("days", () => {
  it("compares local calendar days", () => {
    assert.equal(dayKey(new Date(2026, 0, 5, 23, 59)), "2026-01-05");
    assert.ok(sameDay(new Date(2026, 0, 5, 0, 0), new Date(2026, 0, 5, 23, 59)));
    assert.ok(!sameDay(new Date(2026, 0, 5, 23, 59), new Date(2026, 0, 6, 0, 0)));
  });
});

describe("relativeTime", () => {
  const now = NOW.getTime();
  it("says now, then minutes, hours and days ago", () => {
    assert.equal(relativeTime(new Date(now - 10_000), now, "en"), "now");
    // The narrow unit names vary between ICU versions ("5m ago", "5 min. ago").
    assert.match(relativeTime(new Date(now - 5 * 60_000), now, "en"), /^5\s?m\D* ago$/);
    assert.match(relativeTime(new Date(now - 3 * 3600_000), now, "en"), /^3\s?h\D* ago$/);
    assert.match(relativeTime(new Date(now - 2 * 86400_000), now, "en"), /^2\s?d\D* ago$/);
  });

  it("gives a date after a month", () => {
    assert.equal(relativeTime(new Date(2025, 10, 2), now, "en-US"), "Nov 2");
  });
});
