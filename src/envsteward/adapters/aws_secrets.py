"""AWS Secrets Manager: list/describe/get/put, a name prefix as a ConfigSource, and the ``aws-sm://``
SecretStore."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from envsteward.adapters._secret_exists import SecretExistsByReading
from envsteward.adapters._tree import set_leaf, set_nested, split_path
from envsteward.adapters.aws_errors import SYSTEM, aws_errors
from envsteward.adapters.aws_session import AWSClients
from envsteward.adapters.aws_ssm import select_json_key
from envsteward.errors import ConflictError, NotFoundError, PermanentError
from envsteward.inventory.metadata import SecretMetadata, StoredSecret
from envsteward.ports import JSONValue


@dataclass(frozen=True)
class SecretSummary:
    """A secret's description; never its value."""

    name: str
    arn: str
    description: str | None = None
    last_changed: datetime | None = None
    current_version_id: str | None = None
    tags: Mapping[str, str] | None = None
    last_rotated: datetime | None = None
    deleted: datetime | None = None
    """When the secret was scheduled for deletion (it can still be restored); None: not deleted."""


def _summary(item: Mapping[str, Any]) -> SecretSummary:
    current = next(
        (
            vid
            for vid, stages in (
                item.get("SecretVersionsToStages") or item.get("VersionIdsToStages") or {}
            ).items()
            if "AWSCURRENT" in stages
        ),
        None,
    )
    return SecretSummary(
        name=str(item["Name"]),
        arn=str(item.get("ARN", "")),
        description=item.get("Description"),
        last_changed=item.get("LastChangedDate"),
        current_version_id=current,
        tags={tag["Key"]: tag["Value"] for tag in item.get("Tags") or []},
        last_rotated=item.get("LastRotatedDate"),
        deleted=item.get("DeletedDate"),
    )


class SecretsManager:
    """Secrets Manager calls with envsteward errors. Values come back as SecretStr only."""

    def __init__(self, clients: AWSClients, region: str | None = None) -> None:
        self._clients = clients
        self.region = region

    @property
    def _sm(self) -> Any:
        return self._clients.secretsmanager(self.region)

    def list_secrets(self, prefix: str = "", *, page_size: int | None = None) -> list[SecretSummary]:
        """Every secret whose name starts with ``prefix`` (ListSecrets with a name filter, ALL pages),
        sorted by name. Secrets scheduled for deletion are not listed."""
        paginator = self._sm.get_paginator("list_secrets")
        kwargs: dict[str, Any] = {}
        if prefix:
            kwargs["Filters"] = [{"Key": "name", "Values": [prefix]}]
        if page_size:
            kwargs["PaginationConfig"] = {"PageSize": page_size}
        found: list[SecretSummary] = []
        with aws_errors("secretsmanager", "list_secrets", prefix):
            for page in paginator.paginate(**kwargs):
                found.extend(_summary(item) for item in page.get("SecretList") or [])
        # the service's name filter matches words too; keep true prefixes only
        return sorted((s for s in found if s.name.startswith(prefix)), key=lambda s: s.name)

    def describe(self, name: str) -> SecretSummary:
        """DescribeSecret. Raises NotFoundError."""
        with aws_errors("secretsmanager", "describe_secret", name):
            return _summary(self._sm.describe_secret(SecretId=name))

    def get_secret_string(self, name: str, version_id: str | None = None) -> SecretStr:
        """GetSecretValue (AWSCURRENT or ``version_id``). Raises NotFoundError, PermanentError for a binary
        secret."""
        # AWSCURRENT named explicitly: AWS's default, and moto's default does not follow a moved label
        kwargs: dict[str, Any] = {"SecretId": name}
        if version_id:
            kwargs["VersionId"] = version_id
        else:
            kwargs["VersionStage"] = "AWSCURRENT"
        with aws_errors("secretsmanager", "get_secret_value", name):
            response = self._sm.get_secret_value(**kwargs)
        if response.get("SecretString") is None:
            raise PermanentError(
                "binary secrets are not supported",
                system=SYSTEM,
                operation=f"secretsmanager get_secret_value {name}",
            )
        return SecretStr(str(response["SecretString"]))

    def put_secret_string(self, name: str, value: SecretStr, *, description: str | None = None) -> str:
        """PutSecretValue, or CreateSecret when the secret does not exist; returns the new version id."""
        try:
            with aws_errors("secretsmanager", "put_secret_value", name):
                response = self._sm.put_secret_value(SecretId=name, SecretString=value.get_secret_value())
        except NotFoundError:
            kwargs: dict[str, Any] = {"Name": name, "SecretString": value.get_secret_value()}
            if description:
                kwargs["Description"] = description
            with aws_errors("secretsmanager", "create_secret", name):
                response = self._sm.create_secret(**kwargs)
        return str(response.get("VersionId", ""))

    # -- rotation (staging labels) -----------------------------------------------------------------------

    def versions_to_stages(self, name: str) -> dict[str, list[str]]:
        """DescribeSecret's ``VersionIdsToStages`` (version id -> staging labels). Raises NotFoundError."""
        with aws_errors("secretsmanager", "describe_secret", name):
            response = self._sm.describe_secret(SecretId=name)
        return {str(k): list(v) for k, v in (response.get("VersionIdsToStages") or {}).items()}

    def put_pending(self, name: str, value: SecretStr, token: str) -> str:
        """PutSecretValue labelled ``AWSPENDING`` only (``token`` is the new version id, idempotent for the
        same value); AWSCURRENT does not move. Returns the version id."""
        with aws_errors("secretsmanager", "put_secret_value", name):
            response = self._sm.put_secret_value(
                SecretId=name,
                ClientRequestToken=token,
                SecretString=value.get_secret_value(),
                VersionStages=["AWSPENDING"],
            )
        return str(response.get("VersionId", token))

    def get_secret_stage(self, name: str, stage: str) -> SecretStr:
        """GetSecretValue of the version labelled ``stage``. Raises NotFoundError."""
        with aws_errors("secretsmanager", "get_secret_value", f"{name} ({stage})"):
            response = self._sm.get_secret_value(SecretId=name, VersionStage=stage)
        return SecretStr(str(response.get("SecretString") or ""))

    def move_stage(self, name: str, stage: str, *, to_version: str | None, from_version: str | None) -> None:
        """UpdateSecretVersionStage: put ``stage`` on ``to_version`` (None: only remove it) and take it off
        ``from_version``."""
        kwargs: dict[str, Any] = {"SecretId": name, "VersionStage": stage}
        if to_version:
            kwargs["MoveToVersionId"] = to_version
        if from_version:
            kwargs["RemoveFromVersionId"] = from_version
        with aws_errors("secretsmanager", "update_secret_version_stage", f"{name} ({stage})"):
            self._sm.update_secret_version_stage(**kwargs)

    def delete(self, name: str, *, force: bool = False) -> None:
        """DeleteSecret (``force``: immediately, without the recovery window). Raises NotFoundError."""
        with aws_errors("secretsmanager", "delete_secret", name):
            if force:
                self._sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            else:
                self._sm.delete_secret(SecretId=name)


def _decode_secret(text: str) -> JSONValue:
    try:
        return json.loads(text)
    except ValueError:
        return text


class SecretsManagerSource:
    """Every secret named ``<prefix>/...`` as a ConfigSource (read-only by default).

    The secret ``staging/app/db`` with the JSON SecretString ``{"host": ...}`` reads as
    ``{"db": {"host": ...}}`` under the prefix ``staging/app``; a non-JSON secret reads as its string.
    """

    def __init__(
        self,
        name: str,
        clients: AWSClients,
        prefix: str,
        writable: bool = False,
        *,
        region: str | None = None,
        missing_ok: bool = False,
    ) -> None:
        self.name = name
        self.writable = writable
        self.prefix = prefix.strip("/")
        self.missing_ok = missing_ok
        self._sm = SecretsManager(clients, region)

    def __repr__(self) -> str:
        return f"SecretsManagerSource(name={self.name!r}, prefix={self.prefix!r}, writable={self.writable})"

    def _relative(self, secret_name: str) -> tuple[str, ...] | None:
        if not self.prefix:
            return split_path(secret_name)
        if secret_name == self.prefix:
            return ()
        if secret_name.startswith(self.prefix + "/"):
            return split_path(secret_name[len(self.prefix) + 1 :])
        return None

    def _names(self) -> dict[tuple[str, ...], str]:
        names: dict[tuple[str, ...], str] = {}
        for summary in self._sm.list_secrets(self.prefix):
            relative = self._relative(summary.name)
            if relative is not None:
                names[relative] = summary.name
        return names

    def read(self) -> Mapping[str, JSONValue]:
        """ListSecrets under the prefix, then GetSecretValue for each. Raises NotFoundError when there is
        none (unless ``missing_ok``), PermissionDeniedError, TransientError."""
        tree: dict[str, Any] = {}
        names = self._names()
        for relative, secret_name in sorted(names.items()):
            try:
                value = _decode_secret(self._sm.get_secret_string(secret_name).get_secret_value())
            except NotFoundError:
                continue  # deleted between list and get
            set_nested(tree, relative, value, system=SYSTEM, where=f"secretsmanager {self.prefix}")
        if not names and not self.missing_ok:
            raise NotFoundError(
                "no secrets under this prefix", system=SYSTEM, operation=f"secretsmanager read {self.prefix}"
            )
        return tree

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        """Set one leaf: a field of the deepest existing JSON secret along ``key_path`` (read-modify-write),
        else a new secret ``<prefix>/<key_path[:-1]>`` holding ``{leaf: value}``.

        Secrets Manager has no check-and-set; the current version is compared just before the write and a
        change raises ConflictError, which narrows (but cannot close) the race window.
        Raises PermanentError when read-only or the secret holding the leaf is not a JSON object.
        """
        operation = f"secretsmanager write {self.prefix}"
        if not self.writable:
            raise PermanentError(f"source {self.name!r} is read-only", system=SYSTEM, operation=operation)
        if not key_path:
            raise PermanentError("an empty key path names no secret", system=SYSTEM, operation=operation)
        names = self._names()
        for split in range(len(key_path) - 1, -1, -1):
            secret_name = names.get(key_path[:split])
            if secret_name is None:
                continue
            before = self._sm.describe(secret_name).current_version_id
            data = _decode_secret(self._sm.get_secret_string(secret_name).get_secret_value())
            if not isinstance(data, dict):
                raise PermanentError(
                    "the secret holding this key is not a JSON object",
                    system=SYSTEM,
                    operation=f"{operation} {secret_name}",
                )
            set_leaf(data, key_path[split:], value, system=SYSTEM, operation=f"{operation} {secret_name}")
            if self._sm.describe(secret_name).current_version_id != before:
                raise ConflictError(
                    "the secret changed since it was read",
                    system=SYSTEM,
                    operation=f"{operation} {secret_name}",
                )
            self._sm.put_secret_string(secret_name, SecretStr(json.dumps(data)))
            return
        new_name = "/".join(part for part in (self.prefix, *key_path[:-1]) if part)
        if not key_path[:-1] and not self.prefix:
            raise PermanentError("a key path needs a secret name", system=SYSTEM, operation=operation)
        self._sm.put_secret_string(new_name, SecretStr(json.dumps({key_path[-1]: value})))


class SecretsManagerSecretStore(SecretExistsByReading):
    """``aws-sm://<secret-name>[#<key>]`` references: a field of a JSON secret, or the whole string."""

    scheme = "aws-sm"

    def __init__(self, clients: AWSClients, region: str | None = None) -> None:
        self._sm = SecretsManager(clients, region)

    def get_secret(self, location: str, key: str | None) -> SecretStr:
        """GetSecretValue; ``key`` selects a field of the JSON SecretString. Raises NotFoundError (secret or
        key missing), PermanentError (key asked of a non-JSON secret), PermissionDeniedError..."""
        value = self._sm.get_secret_string(location)
        if key is None:
            return value
        return select_json_key(value.get_secret_value(), key, f"secretsmanager get_secret_value {location}")

    def describe_secret(self, location: str, key: str | None) -> SecretMetadata:
        """DescribeSecret: the AWSCURRENT version id, ``LastChangedDate`` and ``LastRotatedDate``; with
        ``key``, GetSecretValue to check that the JSON secret holds it (the value is dropped at once). A
        missing secret, one scheduled for deletion, or a missing key is ``exists=False``. Raises
        PermissionDeniedError, TransientError, PermanentError (a key asked of a non-JSON secret)."""
        try:
            summary = self._sm.describe(location)
        except NotFoundError:
            return SecretMetadata(exists=False, detail="no such secret")
        found = SecretMetadata(
            exists=True,
            version=summary.current_version_id,
            changed_at=summary.last_changed,
            rotated_at=summary.last_rotated,
        )
        if summary.deleted is not None:
            return SecretMetadata(exists=False, version=found.version, detail="scheduled for deletion")
        if key is not None and not self.secret_exists(location, key):
            return SecretMetadata(
                exists=False, version=found.version, changed_at=found.changed_at, detail=f"no key {key!r}"
            )
        return found

    def list_secrets(self, prefix: str) -> list[StoredSecret]:
        """ListSecrets whose names start with ``prefix`` (all pages; not those scheduled for deletion)."""
        return [StoredSecret(s.name, s.last_changed) for s in self._sm.list_secrets(prefix)]
