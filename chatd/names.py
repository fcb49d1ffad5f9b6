"""Room and user names: one spelling per name, nothing invisible, no mixed-script look-alikes.

A name is normalised with NFKC, so NFD `café` is the NFC one and fullwidth or mathematical
letters are the plain letters they look like. It may hold letters and digits of any script,
combining marks after them (Devanagari vowel signs, accents), `_`, `-`, `.` and spaces. It
must not hold an invisible character (Unicode's default-ignorable code points, such as
U+200B ZERO WIDTH SPACE and the Hangul fillers U+3164, U+115F and U+FFA0, which are letters
by category), and its letters must follow UTS #39's "moderately restrictive" level: one
script, or Latin with Han and Japanese kana, Han with Bopomofo or Hangul, or Latin with one
other script that is neither Cyrillic nor Greek, so `general` spelt with a
Cyrillic `e` (U+0435) is refused.
"""

from __future__ import annotations

import functools
import unicodedata

import regex

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt): drawn as nothing.
_DEFAULT_IGNORABLE = regex.compile(
    r"[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E"
    r"\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8\U0001BCA0-\U0001BCA3"
    r"\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]"
)
# Letters, digits and marks of any script; `_`, `-`, `.` and space. Marks never come first.
_NAME_CHARS = regex.compile(r"[\p{L}\p{Nd}_][\p{L}\p{M}\p{Nd}_ .\-]*")
_VISIBLE = regex.compile(r"[^\s\p{Cc}\p{Cf}\p{Z}]")

# Scripts a name's letters are checked against (Script_Extensions). A letter of a script not
# listed counts as one script of its own, "Other", which is all the check needs.
_SCRIPTS = (
    "Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Syriac", "Thaana", "Nko",
    "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada",
    "Malayalam", "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Georgian", "Hangul",
    "Ethiopic", "Cherokee", "Canadian_Aboriginal", "Khmer", "Mongolian", "Han", "Hiragana",
    "Katakana", "Bopomofo", "Yi", "Tifinagh", "Javanese", "Balinese", "Sundanese", "Vai",
    "Adlam", "Ol_Chiki", "Tai_Tham", "Tai_Viet", "Cham", "Lisu", "Bamum", "Osage",
    "Meetei_Mayek", "Chakma", "Hanifi_Rohingya", "Samaritan", "Mandaic", "Runic", "Ogham",
    "Coptic", "Glagolitic", "Braille", "Tagalog", "Buginese", "Limbu", "Tai_Le", "New_Tai_Lue",
)  # fmt: skip
_SCRIPT_PATTERNS = tuple((name, regex.compile(rf"\p{{scx={name}}}")) for name in _SCRIPTS)
_COMMON = regex.compile(r"[\p{sc=Common}\p{sc=Inherited}]")
# UTS #39 5.2: scripts that may be written together in one identifier.
_CJK_SETS = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)
_NEVER_WITH_LATIN = frozenset({"Cyrillic", "Greek"})


# What a person is told about names (the client shows it beside its name fields).
NAME_RULE = (
    "Letters and digits of any script (with their accents and marks), spaces, '-', '.' and "
    "'_'; it starts with a letter, a digit or '_', does not end with a space, holds no "
    "invisible characters, and does not mix look-alike scripts such as Latin and Cyrillic."
)


class NameProblem(ValueError):
    """Why a name is refused, in words for the person who typed it."""


class TooLongName(NameProblem):
    pass


@functools.lru_cache(maxsize=4096)
def _scripts_of(char: str) -> frozenset[str]:
    if _COMMON.fullmatch(char):
        return frozenset()  # digits, punctuation, combining marks: any script
    found = frozenset(name for name, pattern in _SCRIPT_PATTERNS if pattern.fullmatch(char))
    return found or frozenset({"Other"})


def _mixed_scripts(name: str) -> bool:
    """True when the letters of `name` mix scripts beyond UTS #39's moderately restrictive."""
    # Each letter belongs to one or more scripts (Script_Extensions); a name passes when one
    # allowed set of scripts has a script of every letter.
    per_char = [s for s in map(_scripts_of, name) if s]
    if not per_char or frozenset.intersection(*per_char):
        return False
    if any(all(s & allowed for s in per_char) for allowed in _CJK_SETS):
        return False
    others = {script for s in per_char for script in s} - {"Latin"} - _NEVER_WITH_LATIN
    return not any(all("Latin" in s or other in s for s in per_char) for other in others)


def normalize_name(value: str, what: str, max_chars: int) -> str:
    """The canonical spelling of a room or user name; raises NameProblem saying what is wrong
    (TooLongName when it is longer than `max_chars` once normalised)."""
    name = unicodedata.normalize("NFKC", value)
    if _DEFAULT_IGNORABLE.search(name):
        raise NameProblem(f"{what} contains an invisible character")
    if len(name) > max_chars:
        raise TooLongName(f"{what} is longer than {max_chars} characters")
    if not _NAME_CHARS.fullmatch(name) or name.endswith(" "):
        raise NameProblem(
            f"{what} must be 1-{max_chars} letters, digits, spaces, '-', '.' or '_', "
            "start with a letter, digit or '_' and not end with a space"
        )
    if _mixed_scripts(name):
        raise NameProblem(f"{what} mixes letters of different scripts that look alike")
    return name


def has_visible_character(text: str) -> bool:
    """False for text of only spaces, line breaks and invisible characters."""
    return _VISIBLE.search(_DEFAULT_IGNORABLE.sub("", text)) is not None
