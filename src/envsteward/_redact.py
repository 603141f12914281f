"""Making text from outside (a vendor's error message, a tool's stderr) safe to show.

Vendors echo offending input in their error messages, and that input may be a secret value: AWS
validation errors quote the rejected value, PostgreSQL quotes data and syntax-error tokens, HTTP services
reflect request fields. Every adapter passes such text through :func:`vendor_text` before it goes into an
envsteward error:

* :func:`scrub` replaces each known secret value (a token, a password) wherever it appears;
* :func:`redact_quoted` replaces everything between quotes (``'...'``, ``"..."``, backticks);
* :func:`shorten` collapses whitespace and caps the length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "<redacted>"
MAX_SCANNED = 16 * 1024
""":func:`vendor_text` looks at no more than this many characters (an HTTP error body can be megabytes)."""

_NOT_AFTER_ALNUM = r"(?<![^\W_])"
_NOT_BEFORE_ALNUM = r"(?![^\W_])"
_OPENING = re.compile(_NOT_AFTER_ALNUM + "['\"`]")
_CLOSING = {quote: re.compile(re.escape(quote) + _NOT_BEFORE_ALNUM) for quote in "'\"`"}


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``<redacted>``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact_quoted(text: str) -> str:
    """``text`` with the content of every quoted substring replaced by ``<redacted>`` (quotes kept).

    A quote opens only at the start or after a character that is not a letter or digit, so the apostrophe
    in ``can't`` opens nothing; it closes at the next same quote not followed by a letter or digit, so a
    value with a quote inside (``'ab'cd'``) is hidden whole. Quoted text may span lines. A quote that
    never closes hides everything after it: a value cut off by a length limit is never shown in part.
    """
    pieces: list[str] = []
    position = 0
    while (opening := _OPENING.search(text, position)) is not None:
        quote = opening.group()
        pieces.append(text[position : opening.end()] + REDACTED)
        closing = _CLOSING[quote].search(text, opening.end())
        if closing is None:
            return "".join(pieces)
        pieces.append(quote)
        position = closing.end()
    pieces.append(text[position:])
    return "".join(pieces)


def shorten(text: str, limit: int) -> str:
    """``text`` with runs of whitespace (line breaks too) collapsed to one space, cut to ``limit``."""
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= limit else collapsed[: max(0, limit - 3)] + "..."


def vendor_text(text: str | None, secrets: Iterable[str | None] = (), limit: int = 240) -> str:
    """A vendor's message made safe to show: secrets scrubbed, quoted substrings redacted, shortened.

    Only the first :data:`MAX_SCANNED` characters are looked at, after the secrets are scrubbed (so a cut
    never leaves part of a known secret behind).
    """
    if not text:
        return ""
    return shorten(redact_quoted(scrub(text, secrets)[:MAX_SCANNED]), limit)
