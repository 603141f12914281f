"""PEM certificates held as secrets: their public facts (subject, expiry). Pure; parses with
``cryptography.x509``."""

from __future__ import annotations

import re
from datetime import UTC

from envsteward.inventory.model import CertificateFacts

_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----", re.DOTALL
)


def certificate_facts(text: str) -> CertificateFacts | None:
    """The first PEM certificate in ``text`` (a leaf comes first in a chain): its subject and
    ``not_after``; None when ``text`` holds no parsable certificate. Never raises."""
    from cryptography import x509

    match = _PEM_CERTIFICATE.search(text)
    if match is None:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(match.group(0).encode("ascii"))
    except ValueError:
        return None
    not_after = certificate.not_valid_after_utc.astimezone(UTC)
    return CertificateFacts(subject=certificate.subject.rfc4514_string()[:200], not_after=not_after)
