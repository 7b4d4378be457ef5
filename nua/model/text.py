"""Text rules shared by every stored string: valid Unicode, normal form, nothing invisible.

JSON can carry a lone surrogate (``"\\ud800"``): Python decodes it into a ``str``
that UTF-8 cannot encode, so a reply holding it cannot be sent. The gateway
refuses such strings where requests are decoded; :mod:`nua.model.checks` checks
again (defence in depth), and rows read back are checked in case an older
database already holds one (:func:`repaired`).

Names (user names, e-mails, group names, setting keys) are compared and shown to
people: they are stored in Unicode normal form C, and characters that show
nothing or change the direction of the text around them are refused, since they
make two different names look the same (``admin`` and ``adm\\u200bin``).
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Categories with no visible glyph of their own: control (Cc), format (Cf: zero-width
# characters, bidirectional marks and overrides, the soft hyphen...), surrogates (Cs),
# private use (Co), unassigned (Cn), line and paragraph separators (Zl, Zp).
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and symbols that render as blank although their category is not one of those.
INVISIBLE_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")
# The bidirectional controls: reorder the text around them (U+202E shows "abc" as "cba").
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
REPLACEMENT = "\ufffd"


def encodable(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (it holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_invisible(text: str, *, spaces: bool) -> str | None:
    """The first character of ``text`` that shows nothing (a space too, unless ``spaces``), or None."""
    if text.isascii():  # the common case: only C0 controls and DEL are invisible there
        for char in text:
            if char < " " or char == "\x7f" or (char == " " and not spaces):
                return char
        return None
    for char in text:
        category = unicodedata.category(char)
        if category in INVISIBLE_CATEGORIES or char in INVISIBLE_CHARACTERS:
            return char
        if category == "Zs" and not spaces:
            return char
    return None


def first_bidi_control(text: str) -> str | None:
    """The first bidirectional control or lone surrogate in ``text``, or None (free text keeps the rest)."""
    if text.isascii():
        return None
    for char in text:
        if char in BIDI_CONTROLS or unicodedata.category(char) == "Cs":
            return char
    return None


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C (composed: one code point for "é" however it was typed)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text)


def codepoint(char: str) -> str:
    """``char`` as people look it up: ``U+202E``."""
    return f"U+{ord(char):04X}"


def json_encodable(value: Any) -> bool:
    """Whether every string in the JSON ``value`` (object keys included, at any depth) is encodable.

    A walk with a stack of its own, not recursion: a value nested a few hundred
    levels deep (JSON allows it) must not raise RecursionError here.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True


def json_depth(value: Any) -> int:
    """How deeply the JSON ``value`` nests arrays and objects (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def repaired(value: Any) -> Any:
    """The JSON ``value`` with each character UTF-8 cannot encode replaced by U+FFFD."""
    if isinstance(value, str):
        if encodable(value):
            return value
        return "".join(REPLACEMENT if 0xD800 <= ord(char) <= 0xDFFF else char for char in value)
    if isinstance(value, list):
        return [repaired(item) for item in value]
    if isinstance(value, dict):
        return {repaired(key): repaired(item) for key, item in value.items()}
    return value


__all__ = [
    "BIDI_CONTROLS",
    "INVISIBLE_CATEGORIES",
    "INVISIBLE_CHARACTERS",
    "codepoint",
    "encodable",
    "first_bidi_control",
    "first_invisible",
    "json_depth",
    "json_encodable",
    "nfc",
    "repaired",
]
