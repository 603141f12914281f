"""SSM Parameter Store: a parameter path as a ConfigSource, the ``ssm://`` SecretStore, and the calls the SSM
backup source (:mod:`envsteward.backup.sources.ssm`) makes (export and restore of a parameter tree)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import SecretStr

from envsteward.adapters._secret_exists import SecretExistsByReading
from envsteward.adapters._tree import set_nested, split_path
from envsteward.adapters.aws_errors import SYSTEM, aws_errors
from envsteward.adapters.aws_session import AWSClients
from envsteward.errors import ConfigurationError, NotFoundError, PermanentError
from envsteward.inventory.metadata import SecretMetadata, StoredSecret
from envsteward.ports import JSONValue

ValueFormat = Literal["json", "string"]


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN/Infinity are not JSON scalars we accept


def decode_scalar(text: str) -> JSONValue:
    """``"5432"`` -> 5432, ``"true"`` -> True, ``"null"`` -> None, ``'"5432"'`` -> ``"5432"``; anything that
    is not a JSON scalar (objects, arrays, plain text) stays the string it was."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text
    if isinstance(value, (dict, list)):
        return text
    return value


def encode_scalar(value: JSONValue) -> str:
    """The inverse of :func:`decode_scalar`: ``decode_scalar(encode_scalar(v)) == v`` with the exact type.

    A string that would read back as another type (``"5432"``, ``"true"``, ``"null"``) is stored JSON-quoted;
    other strings are stored as they are. Raises PermanentError for mappings, lists and non-finite floats.
    """
    if isinstance(value, str):
        return json.dumps(value) if decode_scalar(value) != value else value
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return json.dumps(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PermanentError(
                "SSM values cannot hold NaN or infinity", system=SYSTEM, operation="ssm encode"
            )
        return json.dumps(value)
    raise PermanentError(
        f"an SSM parameter holds one scalar; got a {type(value).__name__} (write each leaf separately)",
        system=SYSTEM,
        operation="ssm encode",
    )


class SSMParameterSource:
    """The parameters under ``prefix`` (e.g. ``/app/staging``) as a ConfigSource.

    ``/app/staging/log/level`` reads as ``{"log": {"level": ...}}``. With ``value_format="json"`` each
    value is decoded as a JSON scalar when it is one (``"5432"`` -> 5432), else kept as the string; with
    ``"string"`` values are returned verbatim.
    """

    def __init__(
        self,
        name: str,
        clients: AWSClients,
        prefix: str,
        writable: bool = False,
        value_format: ValueFormat = "json",
        *,
        region: str | None = None,
        new_parameter_type: Literal["String", "SecureString"] = "SecureString",
        missing_ok: bool = False,
    ) -> None:
        if value_format not in ("json", "string"):
            raise ConfigurationError(
                f"source {name!r}: value_format must be 'json' or 'string', not {value_format!r}",
                system=SYSTEM,
                operation="ssm source",
            )
        self.name = name
        self.writable = writable
        self.value_format = value_format
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/"
        self.region = region
        self.new_parameter_type = new_parameter_type
        self.missing_ok = missing_ok
        self._clients = clients

    def __repr__(self) -> str:
        return f"SSMParameterSource(name={self.name!r}, prefix={self.prefix!r}, writable={self.writable})"

    @property
    def _ssm(self) -> Any:
        return self._clients.ssm(self.region)

    def _decode(self, text: str) -> JSONValue:
        return decode_scalar(text) if self.value_format == "json" else text

    def read(self) -> Mapping[str, JSONValue]:
        """Every parameter under the prefix (GetParametersByPath, recursive, decrypted, ALL pages).

        Raises NotFoundError when there is none (unless ``missing_ok``), PermissionDeniedError,
        TransientError, PermanentError when a name is both a value and a folder.
        """
        tree: dict[str, Any] = {}
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        with aws_errors("ssm", "get_parameters_by_path", self.prefix):
            for page in paginator.paginate(Path=self.prefix, Recursive=True, WithDecryption=True):
                for parameter in page.get("Parameters") or []:
                    relative = split_path(str(parameter["Name"])[len(self.prefix) :])
                    set_nested(
                        tree,
                        relative,
                        self._decode(str(parameter["Value"])),
                        system=SYSTEM,
                        where=f"ssm {self.prefix}",
                    )
        if not tree and not self.missing_ok:
            raise NotFoundError(
                "no parameters under this path", system=SYSTEM, operation=f"ssm read {self.prefix}"
            )
        return tree

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        """PutParameter ``<prefix>/<key_path...>`` with Overwrite, keeping an existing parameter's type (and
        its KMS key for a SecureString); a new parameter gets ``new_parameter_type``.

        Raises PermanentError when read-only or the value is not a scalar, and the usual errors. SSM has no
        check-and-set: the last writer wins.
        """
        if not self.writable:
            raise PermanentError(
                f"source {self.name!r} is read-only", system=SYSTEM, operation=f"ssm write {self.prefix}"
            )
        if not key_path:
            raise PermanentError("an empty key path names no parameter", system=SYSTEM, operation="ssm write")
        name = self.prefix.rstrip("/") + "/" + "/".join(key_path)
        text = encode_scalar(value) if self.value_format == "json" else _as_string(value, name)
        with aws_errors("ssm", "describe_parameters", name):
            found = (
                self._ssm.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
                ).get("Parameters")
                or []
            )
        kwargs: dict[str, Any] = {"Name": name, "Value": text, "Overwrite": True}
        if found:
            kwargs["Type"] = found[0]["Type"]
            if found[0]["Type"] == "SecureString" and found[0].get("KeyId"):
                kwargs["KeyId"] = found[0]["KeyId"]
        else:
            kwargs["Type"] = self.new_parameter_type
        with aws_errors("ssm", "put_parameter", name):
            self._ssm.put_parameter(**kwargs)


def _as_string(value: JSONValue, name: str) -> str:
    if isinstance(value, str):
        return value
    raise PermanentError(
        f"value_format is 'string' but the value is a {type(value).__name__}",
        system=SYSTEM,
        operation=f"ssm write {name}",
    )


class SSMSecretStore(SecretExistsByReading):
    """``ssm://<parameter-name>`` references (SecureString or String, decrypted)."""

    scheme = "ssm"

    def __init__(self, clients: AWSClients, region: str | None = None) -> None:
        self._clients = clients
        self.region = region

    def get_secret(self, location: str, key: str | None) -> SecretStr:
        """GetParameter WithDecryption. With ``key``, the value is parsed as a JSON object and that field
        returned. Raises NotFoundError (missing parameter or key), PermissionDeniedError, TransientError."""
        with aws_errors("ssm", "get_parameter", location):
            value = str(
                self._clients.ssm(self.region).get_parameter(Name=location, WithDecryption=True)["Parameter"][
                    "Value"
                ]
            )
        if key is None:
            return SecretStr(value)
        return select_json_key(value, key, f"ssm get_parameter {location}")

    def describe_secret(self, location: str, key: str | None) -> SecretMetadata:
        """GetParameter without decryption: ``Version`` and ``LastModifiedDate``; with ``key``, the value is
        read decrypted to check that the JSON object holds it (and dropped at once). A missing parameter
        or key is ``exists=False``. Raises PermissionDeniedError, TransientError, PermanentError."""
        try:
            with aws_errors("ssm", "get_parameter", location):
                parameter = self._clients.ssm(self.region).get_parameter(Name=location, WithDecryption=False)[
                    "Parameter"
                ]
        except NotFoundError:
            return SecretMetadata(exists=False, detail="no such parameter")
        version = str(parameter["Version"]) if parameter.get("Version") is not None else None
        changed = parameter.get("LastModifiedDate")
        if key is not None and not self.secret_exists(location, key):
            return SecretMetadata(exists=False, version=version, changed_at=changed, detail=f"no key {key!r}")
        return SecretMetadata(exists=True, version=version, changed_at=changed)

    def list_secrets(self, prefix: str) -> list[StoredSecret]:
        """Every parameter below the path ``prefix`` (DescribeParameters with a recursive Path filter, all
        pages; no value is read)."""
        path = "/" + prefix.strip("/")
        paginator = self._clients.ssm(self.region).get_paginator("describe_parameters")
        found: list[StoredSecret] = []
        with aws_errors("ssm", "describe_parameters", path):
            for page in paginator.paginate(
                ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [path]}]
            ):
                found.extend(
                    StoredSecret(str(item["Name"]), item.get("LastModifiedDate"))
                    for item in page.get("Parameters") or []
                )
        return sorted(found, key=lambda stored: stored.location)


def select_json_key(text: str, key: str, operation: str) -> SecretStr:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PermanentError(
            f"a key ({key!r}) was asked for but the secret is not a JSON object",
            system=SYSTEM,
            operation=operation,
        )
    if key not in data:
        raise NotFoundError(f"secret has no key {key!r}", system=SYSTEM, operation=operation)
    value = data[key]
    return SecretStr(value if isinstance(value, str) else json.dumps(value))


# ---------------------------------------------------------------------------------------------------------
# Export and restore of a parameter tree (the SSM backup source); every error translated by aws_errors
# ---------------------------------------------------------------------------------------------------------


def describe_parameters(clients: AWSClients, region: str, prefix: str) -> dict[str, Mapping[str, Any]]:
    """The metadata of every parameter under ``prefix`` (recursive), by full name: what GetParametersByPath
    does not carry (KMS key, description, tier, allowed pattern). No values.

    Calls AWS SSM (DescribeParameters, all pages). Raises PermissionDeniedError, TransientError, ...
    """
    found: dict[str, Mapping[str, Any]] = {}
    filters = [{"Key": "Path", "Option": "Recursive", "Values": [prefix]}]
    with aws_errors("ssm", "describe_parameters", prefix):
        paginator = clients.ssm(region).get_paginator("describe_parameters")
        for page in paginator.paginate(ParameterFilters=filters):
            for parameter in page.get("Parameters") or []:
                found[str(parameter["Name"])] = parameter
    return found


def parameters_by_path(clients: AWSClients, region: str, prefix: str) -> Iterator[Mapping[str, Any]]:
    """Every parameter under ``prefix`` (recursive, SecureStrings decrypted), as SSM returns them
    (``Name``, ``Type``, ``Value``, ``Version``, ``DataType``...), one page at a time.

    Calls AWS SSM (GetParametersByPath) while iterated. Raises PermissionDeniedError, TransientError, ...
    """
    with aws_errors("ssm", "get_parameters_by_path", prefix):
        paginator = clients.ssm(region).get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=prefix, Recursive=True, WithDecryption=True):
            yield from page.get("Parameters") or []


def put_parameter(clients: AWSClients, region: str, **arguments: Any) -> None:
    """PutParameter with ``arguments`` (``Name``, ``Value``, ``Type``, ``Overwrite``, ...).

    Calls AWS SSM. Raises ConflictError when the parameter exists and ``Overwrite`` is false,
    PermissionDeniedError, TransientError, ...
    """
    with aws_errors("ssm", "put_parameter", str(arguments.get("Name", ""))):
        clients.ssm(region).put_parameter(**arguments)


def sdk_versions() -> dict[str, str]:
    """The versions of boto3 and botocore in use (recorded in backup manifests). No external call."""
    import boto3
    import botocore

    return {"boto3": boto3.__version__, "botocore": botocore.__version__}
