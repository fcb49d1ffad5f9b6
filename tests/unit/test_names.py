"""Names: NFKC spelling, no invisible characters, UTS #39 moderately restrictive scripts."""

from __future__ import annotations

import pytest

from chatd.names import NameProblem, TooLongName, has_visible_character, normalize_name


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("general", "general"),
        ("cafe\u0301", "café"),  # NFD to NFC
        ("\uff47\uff45\uff4e\uff45\uff52\uff41\uff4c", "general"),  # fullwidth
        ("\U0001d420\U0001d41e\U0001d427", "gen"),  # mathematical bold
        ("हिन्दी", "हिन्दी"),  # combining vowel signs and virama
        ("日本語のへや", "日本語のへや"),  # Han with kana
        ("한국어 방", "한국어 방"),
        ("Москва-2", "Москва-2"),
        ("Ελληνικά", "Ελληνικά"),
        ("abc日本", "abc日本"),  # Latin with Han
        ("tokyo東京とうきょう", "tokyo東京とうきょう"),
        ("हिन्दी chat", "हिन्दी chat"),  # Latin with one other script
        ("_private", "_private"),
        ("a.b-c d", "a.b-c d"),
    ],
)
def test_accepted_names_take_their_canonical_spelling(raw, canonical):
    assert normalize_name(raw, "room", 64) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "general\u3164",  # HANGUL FILLER, a letter by category
        "\u115fgeneral",
        "gen\uffa0eral",
        "gen\u200beral",  # ZERO WIDTH SPACE
        "gen\u00aderal",  # SOFT HYPHEN
        "gen\u2060eral",
        "gen\ufe0feral",  # variation selector
        "g\u0435neral",  # Cyrillic e among Latin
        "p\u0430ypal",  # Cyrillic a
        "\u03bfpen",  # Greek omicron with Latin
        "Привет a",  # Cyrillic with Latin
        "\u0301abc",  # a name cannot start with a mark
        ".hidden",
        "trailing ",
        "",
        "tab\there",
    ],
)
def test_invisible_look_alike_or_malformed_names_are_refused(raw):
    with pytest.raises(NameProblem):
        normalize_name(raw, "room", 64)


def test_length_counts_the_normalised_name():
    assert normalize_name("e\u0301" * 64, "room", 64) == "é" * 64
    with pytest.raises(TooLongName):
        normalize_name("e" * 65, "room", 64)


@pytest.mark.parametrize("text", ["\u200b", "\u3164\u3164", " \n\t", "\ufeff\u2060", ""])
def test_text_of_only_invisible_characters_has_nothing_visible(text):
    assert not has_visible_character(text)


@pytest.mark.parametrize("text", ["a", "\u0301", "👍", "。", "\u200bhi"])
def test_text_with_any_visible_character_is_visible(text):
    assert has_visible_character(text)
