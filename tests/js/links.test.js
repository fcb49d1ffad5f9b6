// Link detection (static/links.js): http and https only, punctuation left out.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { findLinks, safeHref, splitLinks } from "../../static/links.js";

const hrefs = (text) => findLinks(text).map((l) => l.text);

describe("findLinks", () => {
  it("finds http and https addresses", () => {
    assert.deepEqual(hrefs("see https://example.com/a?b=1#c and http://x.org"),
      ["https://example.com/a?b=1#c", "http://x.org"]);
  });

  it("leaves every other scheme as text", () => {
    for (const text of ["javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://x.org/f",
      "file:///etc/passwd", "mailto:a@b.c", "vbscript:msgbox", "www.example.com"]) {
      assert.deepEqual(findLinks(text), [], text);
    }
  });

  it("does not take a javascript: address hidden behind http", () => {
    assert.deepEqual(hrefs("xhttps://a.b"), []);
    assert.deepEqual(hrefs("javascript:https://a.b"), ["https://a.b"]);
  });

  it("leaves the sentence's punctuation out", () => {
    assert.deepEqual(hrefs("Read https://example.com/page."), ["https://example.com/page"]);
    assert.deepEqual(hrefs("(see https://example.com/x)"), ["https://example.com/x"]);
    assert.deepEqual(hrefs("“https://example.com/q”, then"), ["https://example.com/q"]);
    assert.deepEqual(hrefs("https://example.com/a!?"), ["https://example.com/a"]);
  });

  it("keeps brackets that belong to the address", () => {
    assert.deepEqual(hrefs("https://en.wikipedia.org/wiki/Chat_(disambiguation)"),
      ["https://en.wikipedia.org/wiki/Chat_(disambiguation)"]);
  });

  it("stops at spaces and characters that cannot be in an address", () => {
    assert.deepEqual(hrefs("<https://a.example/x>"), ["https://a.example/x"]);
    assert.deepEqual(hrefs('"https://a.example/y"'), ["https://a.example/y"]);
    assert.deepEqual(hrefs("https://a.example/z\nnext"), ["https://a.example/z"]);
  });

  it("needs a host", () => {
    assert.deepEqual(hrefs("https:// nothing"), []);
    assert.deepEqual(hrefs("https://"), []);
  });

  it("gives a normalised href and keeps the text as typed", () => {
    const [link] = findLinks("HTTPS://Example.COM/Path");
    assert.equal(link.text, "HTTPS://Example.COM/Path");
    assert.equal(link.href, "https://example.com/Path");
  });
});

describe("safeHref", () => {
  it("accepts only absolute http(s)", () => {
    assert.equal(safeHref("https://a.b/"), "https://a.b/");
    assert.equal(safeHref("javascript:alert(1)"), null);
    assert.equal(safeHref("/relative"), null);
    assert.equal(safeHref("not a url"), null);
  });
});

describe("splitLinks", () => {
  it("cuts text into plain pieces and links, losing nothing", () => {
    const text = "a https://x.org/1 b https://y.org c";
    const parts = splitLinks(text);
    assert.deepEqual(parts, [
      { text: "a " },
      { text: "https://x.org/1", href: "https://x.org/1" },
      { text: " b " },
      { text: "https://y.org", href: "https://y.org/" },
      { text: " c" },
    ]);
    assert.equal(parts.map((p) => p.text).join(""), text);
  });

  it("gives one plain piece for text without links, and none for no text", () => {
    assert.deepEqual(splitLinks("<img src=x onerror=alert(1)>"),
      [{ text: "<img src=x onerror=alert(1)>" }]);
    assert.deepEqual(splitLinks(""), []);
  });
});
