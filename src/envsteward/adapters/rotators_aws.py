"""Rotation of AWS secrets: Secrets Manager natively (a version labelled ``AWSPENDING``, then ``AWSCURRENT``
moved to it; the old version keeps ``AWSPREVIOUS``), and SSM SecureString parameters (a new parameter
version, the previous one kept in the parameter's history)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import SecretStr

from envsteward.adapters._rotation_values import key_of, require_same, with_key
from envsteward.adapters.aws_errors import aws_errors
from envsteward.adapters.aws_secrets import SecretsManager
from envsteward.adapters.aws_session import AWSClients
from envsteward.errors import ConflictError, PermanentError
from envsteward.secret_refs import SecretRef

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"


class SecretsManagerStage:
    """:class:`envsteward.rotation.ports.SecretStage` for ``aws-sm://NAME[#KEY]``."""

    def __init__(self, clients: AWSClients, ref: SecretRef) -> None:
        self._sm, self._ref = SecretsManager(clients), ref
        self._name = ref.location
        self._where = f"rotate {ref.uri()}"
        self._previous_text: SecretStr | None = None
        self._current_id: str | None = None
        self._new_text: SecretStr | None = None
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"SecretsManagerStage({self._ref.uri()!r})"

    def describe(self) -> str:
        return f"stage it as a new version of {self._name} labelled {PENDING}; finish moves {CURRENT} to it"

    def begin(self, pending: SecretStr) -> str:
        """DescribeSecret + GetSecretValue, then PutSecretValue labelled AWSPENDING (a stale AWSPENDING of an
        earlier rotation is taken off first)."""
        stages = self._sm.versions_to_stages(self._name)
        self._current_id = next((vid for vid, labels in stages.items() if CURRENT in labels), None)
        if self._current_id is None:
            raise PermanentError(
                "the secret has no AWSCURRENT version", system="rotation", operation=self._where
            )
        for vid, labels in stages.items():
            if PENDING in labels and vid != self._current_id:
                self._sm.move_stage(self._name, PENDING, to_version=None, from_version=vid)
        self._previous_text = self._sm.get_secret_string(self._name, self._current_id)
        self._new_text = with_key(self._previous_text.get_secret_value(), self._ref.key, pending, self._where)
        self._token = str(uuid.uuid4())
        self._sm.put_pending(self._name, self._new_text, self._token)
        return f"version {self._token} labelled {PENDING} (current {self._current_id})"

    def previous(self) -> SecretStr:
        if self._previous_text is None:
            raise PermanentError("begin first", system="rotation")
        return key_of(self._previous_text.get_secret_value(), self._ref.key, self._where)

    def current(self) -> SecretStr:
        """GetSecretValue (AWSCURRENT), the reference's key of it."""
        text = self._sm.get_secret_stage(self._name, CURRENT)
        return key_of(text.get_secret_value(), self._ref.key, self._where)

    def check_staged(self) -> str:
        assert self._new_text is not None
        require_same(self._sm.get_secret_stage(self._name, PENDING), self._new_text, self._where, PENDING)
        stages = self._sm.versions_to_stages(self._name)
        if CURRENT not in stages.get(self._current_id or "", []):
            raise ConflictError(
                "AWSCURRENT moved during the rotation", system="secretsmanager", operation=self._where
            )
        return f"{PENDING} reads back; {CURRENT} unchanged"

    def commit(self) -> str:
        self._sm.move_stage(self._name, CURRENT, to_version=self._token, from_version=self._current_id)
        self._sm.move_stage(self._name, PENDING, to_version=None, from_version=self._token)
        return f"{CURRENT} moved to {self._token}"

    def verify_current(self) -> str:
        assert self._new_text is not None
        require_same(self._sm.get_secret_stage(self._name, CURRENT), self._new_text, self._where, CURRENT)
        return f"{CURRENT} reads back"

    def abort(self) -> str:
        if self._token is None:
            return "nothing was staged"
        stages = self._sm.versions_to_stages(self._name)
        if PENDING in stages.get(self._token, []):
            self._sm.move_stage(self._name, PENDING, to_version=None, from_version=self._token)
        return f"{PENDING} taken off {self._token}; {CURRENT} never moved"

    def revert(self) -> str:
        assert self._previous_text is not None
        self._sm.move_stage(self._name, CURRENT, to_version=self._current_id, from_version=self._token)
        require_same(
            self._sm.get_secret_stage(self._name, CURRENT), self._previous_text, self._where, CURRENT
        )
        return f"{CURRENT} moved back to {self._current_id}"


class SSMSecureStringStage:
    """:class:`envsteward.rotation.ports.SecretStage` for ``ssm://NAME`` (a SecureString parameter)."""

    def __init__(self, clients: AWSClients, ref: SecretRef) -> None:
        self._clients, self._ref = clients, ref
        self._name = ref.location
        self._where = f"rotate {ref.uri()}"
        self._previous_text: SecretStr | None = None
        self._new_text: SecretStr | None = None
        self._version = 0
        self._key_id: str | None = None
        self._committed = 0

    def __repr__(self) -> str:
        return f"SSMSecureStringStage({self._ref.uri()!r})"

    @property
    def _ssm(self) -> Any:
        return self._clients.ssm()

    def describe(self) -> str:
        return f"hold it in memory; {self._name} gets a new SecureString version at finish (same KMS key)"

    def _read(self) -> tuple[SecretStr, int, str]:
        with aws_errors("ssm", "get_parameter", self._name):
            parameter = self._ssm.get_parameter(Name=self._name, WithDecryption=True)["Parameter"]
        return (
            SecretStr(str(parameter["Value"])),
            int(parameter.get("Version") or 0),
            str(parameter.get("Type")),
        )

    def begin(self, pending: SecretStr) -> str:
        """GetParameter (decrypted) and DescribeParameters (its KMS key). Raises NotFoundError, or
        PermanentError for a parameter that is not a SecureString."""
        text, version, kind = self._read()
        if kind != "SecureString":
            raise PermanentError(
                f"{self._name} is a {kind} parameter: only SecureString parameters are rotated",
                system="rotation",
                operation=self._where,
            )
        with aws_errors("ssm", "describe_parameters", self._name):
            found = (
                self._ssm.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [self._name]}]
                ).get("Parameters")
                or []
            )
        self._key_id = str(found[0]["KeyId"]) if found and found[0].get("KeyId") else None
        self._previous_text, self._version = text, version
        self._new_text = with_key(text.get_secret_value(), self._ref.key, pending, self._where)
        return f"current version {version}"

    def previous(self) -> SecretStr:
        if self._previous_text is None:
            raise PermanentError("begin first", system="rotation")
        return key_of(self._previous_text.get_secret_value(), self._ref.key, self._where)

    def current(self) -> SecretStr:
        """GetParameter (decrypted), the reference's key of it."""
        text, _, _ = self._read()
        return key_of(text.get_secret_value(), self._ref.key, self._where)

    def check_staged(self) -> str:
        _, version, _ = self._read()
        if version != self._version:
            raise ConflictError(
                f"the parameter changed during the rotation (version {self._version} -> {version})",
                system="ssm",
                operation=self._where,
            )
        return f"version {version} unchanged"

    def _put(self, value: SecretStr) -> int:
        kwargs: dict[str, Any] = {
            "Name": self._name,
            "Value": value.get_secret_value(),
            "Type": "SecureString",
            "Overwrite": True,
        }
        if self._key_id:
            kwargs["KeyId"] = self._key_id
        with aws_errors("ssm", "put_parameter", self._name):
            return int(self._ssm.put_parameter(**kwargs).get("Version") or 0)

    def commit(self) -> str:
        """PutParameter (Overwrite), after checking that nobody wrote since begin; the version written must
        be the next one (else someone raced us: ConflictError, and the restore puts the previous back)."""
        assert self._new_text is not None
        self.check_staged()
        self._committed = self._put(self._new_text)
        if self._committed != self._version + 1:
            raise ConflictError(
                f"another write landed during the rotation (version {self._version} -> {self._committed})",
                system="ssm",
                operation=self._where,
            )
        return f"version {self._committed} written (version {self._version} kept in the history)"

    def verify_current(self) -> str:
        assert self._new_text is not None
        text, version, _ = self._read()
        require_same(text, self._new_text, self._where, "the parameter")
        return f"version {version} reads back"

    def abort(self) -> str:
        return "nothing was written to SSM"

    def revert(self) -> str:
        assert self._previous_text is not None
        version = self._put(self._previous_text)
        text, _, _ = self._read()
        require_same(text, self._previous_text, self._where, "the parameter")
        return f"SSM: the previous value is current again (version {version})"
