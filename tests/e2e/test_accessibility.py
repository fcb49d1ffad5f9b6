"""Accessibility: text contrast in light and dark, touch targets and layout on a phone, and
a short way to the message box with the keyboard however many rooms there are."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import expect

from tests.conftest import Client, Worker
from tests.e2e.conftest import E2E, OpenPage, create_rooms

pytestmark = E2E

# WCAG 2.x AA for normal text.
MIN_CONTRAST = 4.5
TOUCH_PX = 44
PHONE = {"width": 390, "height": 844}

# Every visible piece of text on the page (and every shown placeholder), with its colour and
# the colour behind it, both from getComputedStyle: translucent backgrounds are composited
# over what lies under them, and the opacity of the element and its ancestors fades the text.
CONTRAST = """
() => {
  const parse = (value) => {
    let m = value.match(/^rgba?\\(([^)]*)\\)$/);
    if (m) {
      const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    }
    m = value.match(/^color\\(srgb ([^)]*)\\)$/);
    if (m) {
      const p = m[1].split(/[\\s\\/]+/).filter(Boolean).map(Number);
      return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
    }
    throw new Error("unknown colour " + value);
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
  };
  const background = (node) => {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      const bg = parse(getComputedStyle(n).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    let color = [255, 255, 255, 1];
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  };
  const opacity = (node) => {
    let o = 1;
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      o *= Number(getComputedStyle(n).opacity);
    }
    return o;
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (fg, bg) => {
    const [l1, l2] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    return (l1 + 0.05) / (l2 + 0.05);
  };
  const describe = (node) => {
    let s = node.tagName.toLowerCase();
    if (node.id) s += "#" + node.id;
    if (node.className && typeof node.className === "string") {
      s += "." + node.className.trim().split(/\\s+/).join(".");
    }
    return node.closest(".active") ? ".active " + s : s;
  };
  const results = [];
  const check = (node, text, color) => {
    const bg = background(node);
    const fg = over([color[0], color[1], color[2], color[3] * opacity(node)], bg);
    results.push({
      where: describe(node), text: text.slice(0, 40),
      ratio: Math.round(ratio(fg, bg) * 100) / 100,
    });
  };
  for (const node of document.querySelectorAll("body *")) {
    if (!node.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    const rect = node.getBoundingClientRect();
    if (rect.width < 1 || rect.height < 1) continue;
    if (node.closest(":disabled, [inert]")) continue;
    const own = [...node.childNodes]
      .filter((c) => c.nodeType === 3).map((c) => c.textContent).join("").trim();
    if (own) check(node, own, parse(getComputedStyle(node).color));
    if ((node.tagName === "INPUT" || node.tagName === "TEXTAREA") && node.placeholder &&
        !node.value) {
      check(node, "placeholder: " + node.placeholder,
        parse(getComputedStyle(node, "::placeholder").color));
    }
  }
  return results;
}
"""


def low_contrast(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["ratio"] < MIN_CONTRAST]


async def test_every_text_has_aa_contrast_in_light_and_dark(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room, other, elsewhere = room_name("contrast"), room_name("contrast-b"), room_name("else")
    carol = await client(pair[1].url)
    await carol.join(elsewhere, "Carol")
    assert (await carol.send(elsewhere, "activity elsewhere"))["ok"]
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", other)
    await alice.page.fill("#new-room", room)
    await alice.page.click("#new-room-form button[type=submit]")
    await alice.wait_joined(room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    await alice.send("Hello from Alice")
    await bob.send("Hi @Alice, see https://example.com/docs")
    await expect(alice.message("Hi @Alice, see https://example.com/docs")).to_have_count(1)
    await carol.join(other, "Carol")
    assert (await carol.send(other, "unread in the other room"))["ok"]
    await expect(alice.page.locator("#joined-rooms .badge")).to_have_text("1")
    await expect(alice.page.locator("#other-rooms li", has_text=elsewhere)).to_have_count(1)
    await bob.page.fill("#message", "typing")
    await expect(alice.page.locator("#typing")).to_contain_text("Bob is typing")
    # The active room's line reads "2 online · now".
    active = alice.page.locator("#joined-rooms .room-link.active .room-meta")
    await expect(active).to_have_text(re.compile(r"2 online · now"))
    await alice.page.mouse.move(0, 0)

    for scheme in ("light", "dark"):
        await alice.page.emulate_media(color_scheme=scheme)
        results = await alice.page.evaluate(CONTRAST)
        # The texts this was reported for are among those checked.
        checked = [(r["where"], r["text"]) for r in results]
        for where, text in (
            (".active", "2 online"),
            (".active", "now"),
            ("room-hash", "#"),
            ("textarea#message", "placeholder: Message"),
        ):
            assert any(where in w and t.startswith(text) for w, t in checked), (where, checked)
        assert not low_contrast(results), (scheme, low_contrast(results))

    # The welcome dialog and an error in it, in both schemes too.
    eve = await open_page(pair[0].url)
    await eve.page.fill("#welcome-name", "n" * 40)
    await eve.page.click("#welcome-submit")
    await expect(eve.page.locator("#welcome-error")).to_be_visible()
    for scheme in ("light", "dark"):
        await eve.page.emulate_media(color_scheme=scheme)
        results = await eve.page.evaluate(CONTRAST)
        assert not low_contrast(results), (scheme, low_contrast(results))


async def test_phone_layout_keeps_the_composer_one_line_and_targets_large(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = ("a-very-long-room-name-for-a-phone-" + room_name("x"))[:64].ljust(64, "z")
    alice = await open_page(pair[0].url, viewport=PHONE, has_touch=True)
    await alice.sign_in("Alice", room)
    one_line = await alice.page.locator("#message").evaluate(
        """el => {
            const s = getComputedStyle(el);
            const line = parseFloat(s.lineHeight);
            const inner = el.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom);
            return {inner, line, placeholder: el.placeholder};
        }"""
    )
    assert one_line["inner"] < one_line["line"] * 1.5, one_line
    # The accessible name still names the whole room.
    await expect(alice.page.get_by_role("textbox", name=f"Message #{room}")).to_be_visible()

    await alice.page.click("#menu-button")
    await expect(alice.page.locator("#sidebar")).to_be_visible()
    await expect(alice.page.locator("#joined-rooms .leave")).to_be_visible()
    targets = alice.page.locator(
        "button:visible, input[type=text]:visible, .room-link:visible, a:visible"
    )
    small = []
    for i in range(await targets.count()):
        target = targets.nth(i)
        found = await target.bounding_box()
        if found and (found["width"] < TOUCH_PX - 0.5 or found["height"] < TOUCH_PX - 0.5):
            small.append((await target.evaluate("n => n.outerHTML.slice(0, 80)"), found))
    assert not small, small
    # Nothing runs off the side of the screen.
    width = await alice.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"]


async def test_the_message_box_is_a_few_tabs_away_with_many_rooms(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("keys")
    create_rooms(pair[1].url, [room_name(f"dir{i:02d}") for i in range(37)])
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    others = alice.page.locator("#other-rooms .room-link")
    await expect(others.nth(36)).to_be_attached()

    # From the top of the sidebar, Tab reaches the message box in a few steps.
    await alice.page.click(".brand-name")
    presses = 0
    while not await alice.page.locator("#message").evaluate("n => n === document.activeElement"):
        presses += 1
        assert presses <= 12, "the message box is more than 12 Tab presses away"
        await alice.page.keyboard.press("Tab")

    # The skip link, first on the page, goes straight there.
    await alice.page.locator(".skip-link").focus()
    await expect(alice.page.locator(".skip-link")).to_be_visible()
    await alice.page.keyboard.press("Enter")
    await expect(alice.page.locator("#message")).to_be_focused()

    # Inside a room list, the arrow keys move from room to room; Enter opens one.
    first = others.first
    await first.focus()
    await alice.page.keyboard.press("ArrowDown")
    await expect(others.nth(1)).to_be_focused()
    await alice.page.keyboard.press("End")
    await expect(others.last).to_be_focused()
    await alice.page.keyboard.press("Home")
    await expect(first).to_be_focused()
    name = await first.get_attribute("data-room")
    await alice.page.keyboard.press("Enter")
    await alice.wait_joined(str(name))
    await expect(alice.page.locator("#message")).to_be_focused()


async def test_a_filter_finds_rooms_in_a_long_list(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("filter")
    wanted = room_name("needle")
    create_rooms(pair[1].url, [wanted, *(room_name(f"hay{i}") for i in range(9))])
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    await expect(alice.page.locator("#other-rooms .room-link", has_text=wanted)).to_have_count(1)
    box = alice.page.get_by_role("searchbox", name="Filter rooms")
    await expect(box).to_be_visible()

    await alice.page.keyboard.press("Control+k")
    await expect(box).to_be_focused()
    await box.fill(wanted.upper())
    await expect(alice.page.locator("#other-rooms .room-link")).to_have_count(1)
    await expect(alice.page.locator("#other-rooms .room-name")).to_have_text([wanted])
    await expect(alice.page.locator("#joined-rooms .room-link")).to_have_count(0)
    await expect(alice.page.locator("#no-joined-rooms")).to_be_visible()
    await box.press("Enter")
    await alice.wait_joined(wanted)
    await box.fill("no room is called this")
    await expect(alice.page.locator(".room-link")).to_have_count(0)
    await expect(alice.page.locator("#no-other-rooms")).to_contain_text("No other room matches")
    await box.press("Escape")
    await expect(box).to_have_value("")
    await expect(alice.page.locator("#joined-rooms .room-name")).to_have_text([room, wanted])
