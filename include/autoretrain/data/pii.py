"""Find and redact personal data in free text: e-mail addresses, card-like numbers, phone numbers.

Used by the ``pii`` dataset check (counts only, never the values) and by everything that logs or
sends text to Slack (:func:`redact`). Card-like numbers are 13-19 digits that pass the Luhn check;
phone numbers are 7-15 digits, optionally with a leading ``+`` and single spaces or hyphens between
groups. Pure Python, no pandas: the alert builders import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

EMAIL_TOKEN = "[EMAIL]"
CARD_TOKEN = "[CARD]"
PHONE_TOKEN = "[PHONE]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# a digit run with at most one space or hyphen between digits (SMS glue numbers to words: "Call0906...");
# never the fraction of a decimal number ("p=0.0001234567"): a figure, not a phone (SMS glue phone numbers
# to prices, "087187262701.50gbp", so a run before a decimal point still counts)
_DIGITS = re.compile(r"(?<![\d+])(?<!\d[.,])\+?\d(?:[ -]?\d){6,18}(?!\d)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # "2026-01-04 18" is a time stamp, not a phone
CARD_DIGITS = (13, 19)
PHONE_DIGITS = (7, 15)


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn checksum used by payment cards."""
    if not digits.isdigit():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _classify(candidate: str) -> str | None:
    """``"card"``, ``"phone"`` or None for one digit run found by the scanner."""
    if _ISO_DATE.search(candidate):
        return None
    digits = "".join(c for c in candidate if c.isdigit())
    if CARD_DIGITS[0] <= len(digits) <= CARD_DIGITS[1] and not candidate.startswith("+") \
            and luhn_valid(digits):
        return "card"
    if PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1]:
        return "phone"
    return None


@dataclass(frozen=True)
class PiiCounts:
    """How many of each kind of personal data one text (or a sum of texts) holds."""

    emails: int = 0
    cards: int = 0
    phones: int = 0

    @property
    def total(self) -> int:
        return self.emails + self.cards + self.phones

    def __add__(self, other: PiiCounts) -> PiiCounts:
        return PiiCounts(self.emails + other.emails, self.cards + other.cards, self.phones + other.phones)


def find_pii(text: str) -> PiiCounts:
    """Count e-mail addresses, Luhn-valid card numbers and phone numbers in ``text``."""
    text = str(text)
    emails = len(_EMAIL.findall(text))
    rest = _EMAIL.sub(" ", text)
    kinds = [_classify(m.group(0)) for m in _DIGITS.finditer(rest)]
    return PiiCounts(emails=emails, cards=kinds.count("card"), phones=kinds.count("phone"))


def redact(text: str) -> str:
    """``text`` with e-mails, card-like numbers and phone numbers replaced by placeholders."""
    text = _EMAIL.sub(EMAIL_TOKEN, str(text))

    def replace(match: re.Match[str]) -> str:
        kind = _classify(match.group(0))
        return {"card": CARD_TOKEN, "phone": PHONE_TOKEN}.get(kind or "", match.group(0))

    return _DIGITS.sub(replace, text)


def _keep(text: str) -> str:
    return text


def text_at_rest(redact_at_rest: bool) -> Callable[[str], str]:
    """What the prediction log stores of a message: the text itself, or :func:`redact` of it.

    With ``redact_at_rest`` the raw e-mail addresses, card and phone numbers never reach the
    database; the cost is that labelled traffic trains challengers, and the canary replays the
    champion, on the redacted texts (placeholders instead of the numbers).
    """
    return redact if redact_at_rest else _keep
