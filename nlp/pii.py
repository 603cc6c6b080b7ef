"""Masking of personal data before any text is shown or sent.

Covers mainland mobile numbers, landline numbers with an area code
(010-12345678), 18-digit resident ID numbers, bank card numbers (13–19
digits, optionally grouped by spaces or dashes) and e-mail addresses,
also when written with full-width digits or letters (１３８…), which are
folded to ASCII first. Masking keeps a few edge characters so analysts can still tell
two numbers apart, and never the whole number.
"""

from __future__ import annotations

import re

_ID_CARD = re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])")
# A digit run of 13–19 digits, optionally grouped by single spaces or dashes.
_DIGIT_RUN = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
# Area code 0xx / 0xxx, a dash or space, then a 7–8 digit local number.
_LANDLINE = re.compile(r"(?<![\d-])(0\d{2,3})[- ](\d{3,4})(\d{4})(?![\d-])")
# Full-width digits and the symbols around numbers and e-mails → ASCII, so
# "１３８１２３４５６７８" cannot slip past the patterns below.
# Chinese full-width punctuation (，。) is left alone: this text is shown.
_FULL_WIDTH_MAP = {
    **{chr(c): chr(c - 0xFEE0) for c in range(0xFF10, 0xFF1A)},  # ０-９
    **{chr(c): chr(c - 0xFEE0) for c in range(0xFF21, 0xFF3B)},  # Ａ-Ｚ
    **{chr(c): chr(c - 0xFEE0) for c in range(0xFF41, 0xFF5B)},  # ａ-ｚ
    "＋": "+",
    "－": "-",
    "＠": "@",
    "．": ".",
    "＿": "_",
}
_FULL_WIDTH = str.maketrans(_FULL_WIDTH_MAP)
_FULL_WIDTH_CHARS = frozenset(_FULL_WIDTH_MAP)
# Every pattern below needs a digit (any Unicode digit, as ``\d`` matches) or
# an @, and the fold above touches only these characters: a text with none of
# them is returned untouched at once (most posts).
_MAY_HOLD_PII = re.compile(r"[\d@" + "".join(sorted(_FULL_WIDTH_CHARS)) + "]")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def _keep_edges(m: re.Match[str]) -> str:
    """Keep the first and last four digits, star every other digit, keep separators."""
    run = m.group(0)
    digit_positions = [i for i, ch in enumerate(run) if ch.isdigit() or ch in "Xx"]
    hidden = set(digit_positions[4:-4])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(run))


def mask_pii(text: str) -> str:
    """Return ``text`` with phone, ID card, bank card numbers and e-mails masked.

    Long digit runs (13–19 digits) are treated as card numbers even when they
    are something else (an order number): over-masking is the safe side.
    """
    if not text or not _MAY_HOLD_PII.search(text):
        return text
    text = text.translate(_FULL_WIDTH)
    # Phones first: "+86 138-1234-5678" would otherwise read as a 13-digit card.
    text = _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _LANDLINE.sub(lambda m: f"{m.group(1)}-****{m.group(3)}", text)
    text = _ID_CARD.sub(_keep_edges, text)
    text = _DIGIT_RUN.sub(_keep_edges, text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)
