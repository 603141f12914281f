"""Which external system a piece of work calls, and the name of that system's concurrency limit.

The production profile keeps envsteward within each external system's rate limits with one Prefect global
concurrency limit per system (``envsteward-vault``, ``envsteward-ssm``, ``envsteward-secretsmanager``,
``envsteward-s3``, ``envsteward-postgres``). This module decides *which* limits a step needs; taking the
slots is the tasks' job (:mod:`envsteward.tasks.limits`), creating the limits the production helper's
(``python -m envsteward.deployments.production setup``). Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

SYSTEMS = ("vault", "ssm", "secretsmanager", "s3", "postgres")
"""The external systems that get a limit of their own (the throttling ones, and the shared databases)."""

_SOURCE_KINDS = {"vault_kv": "vault", "ssm": "ssm", "secrets_manager": "secretsmanager"}
"""Config source kind -> system; ``file`` and ``http`` sources call no shared system."""
_SECRET_SCHEMES = {"vault": "vault", "ssm": "ssm", "aws-sm": "secretsmanager"}
"""Secret reference scheme -> system; ``env://`` reads the process environment."""
_BACKUP_KINDS = {"postgres": "postgres", "vault_kv": "vault", "ssm": "ssm"}
"""Backup target kind -> the system it reads; ``sqlite`` and ``config`` (its sources) read no shared one."""


def system_for_source(kind: str) -> str | None:
    """The system a config source of this kind calls, or None (a file, an HTTP endpoint)."""
    return _SOURCE_KINDS.get(kind)


def system_for_scheme(scheme: str) -> str | None:
    """The system a secret reference of this scheme (``vault``, ``ssm``, ``aws-sm``, ``env``) calls."""
    return _SECRET_SCHEMES.get(scheme)


def systems_for_backup(kind: str, storage_kind: str) -> list[str]:
    """The systems a backup of a target of this kind calls: its source, and S3 when the object store is."""
    systems = [_BACKUP_KINDS[kind]] if kind in _BACKUP_KINDS else []
    if storage_kind == "s3":
        systems.append("s3")
    return systems


def limit_names(prefix: str, systems: Iterable[str | None]) -> list[str]:
    """The concurrency-limit names of ``systems`` (None entries dropped, each once, in ``SYSTEMS`` order).

    Raises ValueError for a system not in :data:`SYSTEMS` (a programming error: a limit nobody creates).
    """
    wanted = {s for s in systems if s is not None}
    unknown = wanted - set(SYSTEMS)
    if unknown:
        raise ValueError(f"no concurrency limit for system(s) {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
    return [f"{prefix}{system}" for system in SYSTEMS if system in wanted]
