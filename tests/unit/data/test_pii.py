"""PII detection (e-mails, Luhn-valid card numbers, phone numbers) and redaction."""

from __future__ import annotations

import pytest

from autoretrain.data.pii import PiiCounts, find_pii, luhn_valid, redact


@pytest.mark.parametrize(("number", "valid"), [
    ("4111111111111111", True), ("5500000000000004", True), ("378282246310005", True),
    ("6011111111111117", True), ("4111111111111112", False), ("1234567812345678", False), ("41x1", False)])
def test_luhn(number, valid):
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(("text", "counts", "redacted"), [
    ("Call 09061701461 to claim", PiiCounts(phones=1), "Call [PHONE] to claim"),
    ("Call09050000327 now", PiiCounts(phones=1), "Call[PHONE] now"),
    ("ring 0800 169 6031 or +44 7700 900123", PiiCounts(phones=2), "ring [PHONE] or [PHONE]"),
    ("mail a.b-c@mail.example.co.uk today", PiiCounts(emails=1), "mail [EMAIL] today"),
    ("pay with 4111 1111 1111 1111 ok", PiiCounts(cards=1), "pay with [CARD] ok"),
    ("pay with 4111-1111-1111-1111", PiiCounts(cards=1), "pay with [CARD]"),
    ("ref 4111 1111 1111 1112", PiiCounts(), "ref 4111 1111 1111 1112"),  # 16 digits, not Luhn: neither
    ("p=0.0001234567, call 07700900123.", PiiCounts(phones=1), "p=0.0001234567, call [PHONE]."),
    ("to me@x.io, call 07700900123, card 5500000000000004",
     PiiCounts(emails=1, cards=1, phones=1), "to [EMAIL], call [PHONE], card [CARD]"),
])
def test_finds_and_redacts(text, counts, redacted):
    assert find_pii(text) == counts
    assert redact(text) == redacted


@pytest.mark.parametrize("text", [
    "txt STOP to 87121", "WIN £1000 cash", "run 2026-01-05", "newest data 2026-01-04 18:30 UTC",
    "call me at 10:30", "I have 2 cats and 3 dogs", "sha 3f9a1c", "scheduled__2026-03-01T02:00:00+00:00",
    # figures in alerts are never phone numbers (issue 15: "p=0.[PHONE]", "score 0.[PHONE]")
    "McNemar p=0.0001234567 < 0.05", "tfidf_js score 0.0312345678 > threshold 0.02",
    "f1 0,9812345678", "p 1.2345678e-05",
])
def test_leaves_ordinary_text_alone(text):
    assert redact(text) == text
    assert find_pii(text) == PiiCounts()


def test_a_bare_run_of_seven_digits_counts_as_a_phone():
    """The trade-off, on purpose: SMS phone numbers are bare digit runs, so large numbers are too."""
    assert redact("jackpot 1000000") == "jackpot [PHONE]"
    assert redact("jackpot 1,000,000") == "jackpot 1,000,000"


def test_counts_add_up():
    assert PiiCounts(1, 2, 3) + PiiCounts(1, 0, 1) == PiiCounts(2, 2, 4)
    assert PiiCounts(1, 2, 3).total == 6
    assert redact(12345678) == "[PHONE]"  # anything is stringified first
