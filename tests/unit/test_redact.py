"""envsteward._redact: what vendor text may show, and what it must never show."""

from __future__ import annotations

import pytest

from envsteward._redact import MAX_SCANNED, REDACTED, redact_quoted, scrub, shorten, vendor_text

SEEDED = "s3cr3t-Value-7f2a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Value 'abc' at 'value' failed", "Value '<redacted>' at '<redacted>' failed"),
        ('invalid input "x" for type', 'invalid input "<redacted>" for type'),
        ("near `tok`", "near `<redacted>`"),
        ("You can't create it", "You can't create it"),
        ("no quotes at all", "no quotes at all"),
        ("'' empty", "'<redacted>' empty"),
    ],
)
def test_redact_quoted(text: str, expected: str) -> None:
    assert redact_quoted(text) == expected


def test_a_value_with_a_quote_inside_is_hidden_whole() -> None:
    shown = redact_quoted("Value 'ab'cd' at 'value'")
    assert "ab" not in shown
    assert "cd" not in shown
    assert shown == "Value '<redacted>' at '<redacted>'"


def test_a_multi_line_value_is_hidden() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"
    assert "MIIEvQIBADANBg" not in redact_quoted(f"Value '{pem}' failed")


def test_a_long_value_is_hidden() -> None:
    # The regex this replaced gave up after 2000 characters and showed the start of the value.
    value = SEEDED * 400
    shown = vendor_text(f"1 validation error detected: Value '{value}' at 'value' failed", limit=240)
    assert SEEDED not in shown
    assert shown.startswith("1 validation error detected: Value '<redacted>'")


def test_an_unterminated_quote_hides_the_rest() -> None:
    assert redact_quoted("Value 'abc and more") == "Value '<redacted>"


def test_a_value_cut_by_the_scan_limit_is_not_shown_in_part() -> None:
    text = "x" * (MAX_SCANNED - 5) + f" '{SEEDED}' tail"
    assert SEEDED[:3] not in vendor_text(text, limit=MAX_SCANNED * 2)


def test_known_secrets_are_scrubbed_before_the_cut() -> None:
    text = "y" * (MAX_SCANNED - 4) + SEEDED
    assert SEEDED[:4] not in vendor_text(text, [SEEDED], limit=MAX_SCANNED * 2)


def test_scrub_replaces_every_occurrence_and_skips_empty_secrets() -> None:
    assert scrub(f"a {SEEDED} b {SEEDED}", [None, "", SEEDED]) == f"a {REDACTED} b {REDACTED}"


def test_shorten() -> None:
    assert shorten("a\n\n  b\tc", 100) == "a b c"
    assert shorten("abcdefghij", 8) == "abcde..."


def test_vendor_text_of_nothing_is_empty() -> None:
    assert vendor_text(None) == ""
    assert vendor_text("") == ""
