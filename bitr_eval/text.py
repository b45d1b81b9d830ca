"""Text from a submission made safe to show, on a terminal, in a log or on the board.

An agent's error text and output are the submitter's bytes: a raw ESC can clear the screen,
retitle the terminal or recolour what follows, a carriage return can overwrite a line, a bidi
override can reorder it. `printable` keeps newlines and tabs and writes every other control or
format character as a visible escape. Markdown and HTML need their own escaping on top.
"""

from __future__ import annotations

import unicodedata

_KEPT = "\n\t"
_HIDDEN = ("Cc", "Cf", "Zl", "Zp")  # controls, format characters (bidi, zero-width), line/paragraph separators


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with each control or format character but newline and tab written as `\\x1b`,
    `\\u202e`, ...: what is shown is what the text says, nothing it would do to the display."""
    return "".join(c if c in _KEPT or unicodedata.category(c) not in _HIDDEN else _escape(c) for c in text)
