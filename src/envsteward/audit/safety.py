"""Guards that keep secret values and non-JSON data out of the audit log.

The audit log never scrubs silently: details that hold a ``SecretStr``/``SecretBytes`` or raw bytes are
refused with an error that names where they are (never what they hold), so the caller fixes the call site
and records a keyed fingerprint instead (:meth:`envsteward.fingerprint.Fingerprinter.fingerprint`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import SecretBytes, SecretStr

from envsteward.errors import PermanentError


class AuditDetailsError(PermanentError):
    """The audit details (or another member) hold a secret, bytes, or something that is not JSON."""


_ADVICE = "audit records never carry secret values; record Fingerprinter.fingerprint(value) instead"


def check_json_safe(value: Any, path: str) -> None:
    """Raise AuditDetailsError when ``value`` holds a secret, bytes, or a non-JSON value.

    ``path`` names the value in the message (``details.db.password``); the message never contains the value.
    """
    if isinstance(value, SecretStr | SecretBytes):
        raise AuditDetailsError(f"{path} holds a {type(value).__name__}; {_ADVICE}", system="audit")
    if isinstance(value, bytes | bytearray | memoryview):
        raise AuditDetailsError(
            f"{path} holds raw {type(value).__name__}; bytes may be key material or a secret. {_ADVICE}",
            system="audit",
        )
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditDetailsError(f"{path} is {value!r}, which JSON cannot represent", system="audit")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditDetailsError(
                    f"{path} has a key of type {type(key).__name__}; JSON object keys must be strings",
                    system="audit",
                )
            check_json_safe(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json_safe(item, f"{path}[{index}]")
        return
    raise AuditDetailsError(
        f"{path} holds a {type(value).__name__}, which is not a JSON value (use str, int, float, bool, "
        f"None, dict or list)",
        system="audit",
    )
