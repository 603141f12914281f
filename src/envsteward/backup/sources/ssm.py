"""SSM Parameter Store: export every parameter under a path (decrypted), restore under another prefix.

Stream format (UTF-8 JSON lines)::

    {"format": "envsteward-ssm/1", "source": "/app/production", "region": "eu-west-1"}
    {"path": "db/password", "name": "/app/production/db/password", "type": "SecureString",
     "value": "...", "version": 3, "data_type": "text", "key_id": "alias/aws/ssm",
     "description": "...", "tier": "Standard", "allowed_pattern": null}

``path`` is relative to the backed-up prefix, so the dump restores under any prefix (a scratch prefix for
drills). ``value`` is the decrypted value (SecureStrings included): it is only ever in the stream, which
the pipeline encrypts. Facts, reports, reprs and messages hold counts and names, never values. Tags and
parameter policies are not exported.

Consistency: like Vault, SSM has no snapshot: ``consistent_at`` is when the export started (the older
bound for RPO); the recorded ``version`` of each parameter says exactly what was taken.

External calls: AWS SSM (DescribeParameters, GetParametersByPath, PutParameter) through
:mod:`envsteward.adapters.aws_ssm`, which translates their errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from envsteward.adapters import aws_ssm
from envsteward.adapters.aws_session import AWSClients
from envsteward.backup.sources._jsonlines import JsonLinesRestoreWriter, encode_line
from envsteward.backup.sources.base import (
    DumpStream,
    RestoreTarget,
    rechunk,
    utcnow,
)
from envsteward.backup.sources.vault_kv import check_relative_path
from envsteward.errors import NotFoundError

KIND = "ssm"
FORMAT = "envsteward-ssm/1"
_TYPES = ("String", "StringList", "SecureString")


def normalize_prefix(prefix: str) -> str:
    """``/app/prod/`` -> ``/app/prod``; ``/`` stays ``/``."""
    stripped = prefix.strip("/")
    return f"/{stripped}" if stripped else "/"


def _child(prefix: str, relative: str) -> str:
    return f"{prefix.rstrip('/')}/{relative}"


class SSMBackupSource:
    """Every parameter under ``prefix`` (recursive, decrypted) in ``region`` (default: the settings')."""

    kind = KIND

    def __init__(self, name: str, clients: AWSClients, prefix: str, *, region: str | None = None) -> None:
        self.name = name
        self.clients = clients
        self.prefix = normalize_prefix(prefix)
        self.region = region or clients.region

    def __repr__(self) -> str:
        return f"SSMBackupSource(name={self.name!r}, prefix={self.prefix!r}, region={self.region!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "prefix": self.prefix, "region": self.region}

    def dump(self) -> SSMDumpStream:
        """Entering reads the parameters' metadata (NotFoundError when there is none under the prefix,
        the adapter's PermissionDeniedError / TransientError...); iterating reads the values."""
        return SSMDumpStream(self)


class SSMDumpStream(DumpStream):
    def __init__(self, source: SSMBackupSource) -> None:
        super().__init__(KIND, source.name)
        self._source = source
        self._metadata: dict[str, Mapping[str, Any]] = {}

    def _open(self) -> None:
        source = self._source
        self._consistent_at = utcnow()
        self._metadata = aws_ssm.describe_parameters(source.clients, source.region, source.prefix)
        if not self._metadata:
            raise NotFoundError(
                "no parameters under this path", system="aws", operation=f"ssm backup {source.prefix}"
            )

    def _records(self) -> Iterator[bytes]:
        source = self._source
        yield encode_line({"format": FORMAT, "source": source.prefix, "region": source.region})
        base = source.prefix.rstrip("/") + "/"
        count = 0
        types: dict[str, int] = {}
        for parameter in aws_ssm.parameters_by_path(source.clients, source.region, source.prefix):
            name = str(parameter["Name"])
            meta = self._metadata.get(name, {})
            kind = str(parameter.get("Type") or meta.get("Type") or "String")
            yield encode_line(
                {
                    "path": name[len(base) :] if name.startswith(base) else name.lstrip("/"),
                    "name": name,
                    "type": kind,
                    "value": str(parameter["Value"]),
                    "version": int(parameter.get("Version") or 0),
                    "data_type": parameter.get("DataType") or meta.get("DataType") or "text",
                    "key_id": meta.get("KeyId"),
                    "description": meta.get("Description"),
                    "tier": meta.get("Tier"),
                    "allowed_pattern": meta.get("AllowedPattern"),
                }
            )
            count += 1
            types[kind] = types.get(kind, 0) + 1
        self.facts.update(
            {"prefix": source.prefix, "region": source.region, "parameters": count, "types": types}
        )
        self.tools.update(aws_ssm.sdk_versions())

    def _chunks(self) -> Iterator[bytes]:
        yield from rechunk(self._records())

    def _close(self) -> None:
        self._metadata = {}


class SSMRestoreTarget(RestoreTarget):
    """Put an SSM dump's parameters under ``prefix`` in ``region``.

    ``overwrite=False`` (the default) refuses to replace an existing parameter (ConflictError): restore
    into an empty scratch prefix. SecureStrings are encrypted with ``kms_key_id`` when given, else with
    the key recorded in the dump (which must exist where you restore: in another region or account, pass
    ``kms_key_id``, e.g. ``alias/aws/ssm``).
    """

    kind = KIND

    def __init__(
        self,
        clients: AWSClients,
        prefix: str,
        *,
        region: str | None = None,
        overwrite: bool = False,
        kms_key_id: str | None = None,
    ) -> None:
        self.clients = clients
        self.prefix = normalize_prefix(prefix)
        self.region = region or clients.region
        self.overwrite = overwrite
        self.kms_key_id = kms_key_id

    def __repr__(self) -> str:
        return f"SSMRestoreTarget(prefix={self.prefix!r}, region={self.region!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "prefix": self.prefix, "region": self.region}

    def begin(self) -> SSMRestoreWriter:
        return SSMRestoreWriter(self)


class SSMRestoreWriter(JsonLinesRestoreWriter):
    dump_format = FORMAT
    dump_name = "an SSM dump"
    count_name = "parameters"

    def __init__(self, target: SSMRestoreTarget) -> None:
        super().__init__(KIND, f"{target.region}:{target.prefix}", "aws", f"ssm restore into {target.prefix}")
        self._target = target

    def _apply(self, record: Mapping[str, Any]) -> None:
        relative, kind, value = record.get("path"), record.get("type"), record.get("value")
        if not isinstance(relative, str) or not relative or not check_relative_path(relative):
            raise self._lines.invalid("'path' must be a relative parameter path without '.' or '..' segments")
        if kind not in _TYPES or not isinstance(value, str):
            raise self._lines.invalid(f"'type' must be one of {', '.join(_TYPES)} and 'value' a string")
        target = self._target
        name = _child(target.prefix, relative)
        kwargs: dict[str, Any] = {"Name": name, "Value": value, "Type": kind, "Overwrite": target.overwrite}
        for field, argument in (("description", "Description"), ("allowed_pattern", "AllowedPattern")):
            if record.get(field):
                kwargs[argument] = str(record[field])
        if record.get("data_type") and record["data_type"] != "text":
            kwargs["DataType"] = str(record["data_type"])
        if record.get("tier") in ("Advanced", "Intelligent-Tiering"):
            kwargs["Tier"] = str(record["tier"])
        if kind == "SecureString":
            key_id = target.kms_key_id or record.get("key_id")
            if key_id:
                kwargs["KeyId"] = str(key_id)
        aws_ssm.put_parameter(target.clients, target.region, **kwargs)
