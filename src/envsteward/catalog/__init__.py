"""The environment catalog: environments, desired configuration layers, sources, policies, channels.

``load_catalog(path)`` reads a catalog folder (see ``examples/catalog/README.md``) and returns a validated
:class:`Catalog`, or raises :class:`CatalogError` listing every problem with its file, line and field.
"""

from envsteward.catalog.core import Catalog
from envsteward.catalog.loader import load_catalog
from envsteward.catalog.models import (
    DEFAULT_APPROVALS,
    TIERS,
    ApprovalPolicy,
    BackupTarget,
    ChannelSpec,
    ConfigBackup,
    EmailChannel,
    EnvironmentSpec,
    FileSource,
    HTTPSource,
    PagerDutyChannel,
    PostgresBackup,
    SecretsManagerSource,
    SlackChannel,
    SourceSpec,
    SqliteBackup,
    SSMBackup,
    SSMSource,
    Tier,
    VaultKVBackup,
    VaultKVSource,
)
from envsteward.catalog.problems import CatalogError, CatalogProblem
from envsteward.catalog.refs import SecretRef
from envsteward.catalog.rendered import RenderedConfig
from envsteward.catalog.yamlio import LIMIT_VARIABLES, YamlLimits

__all__ = [
    "DEFAULT_APPROVALS",
    "LIMIT_VARIABLES",
    "TIERS",
    "ApprovalPolicy",
    "BackupTarget",
    "Catalog",
    "CatalogError",
    "CatalogProblem",
    "ChannelSpec",
    "ConfigBackup",
    "EmailChannel",
    "EnvironmentSpec",
    "FileSource",
    "HTTPSource",
    "PagerDutyChannel",
    "PostgresBackup",
    "RenderedConfig",
    "SSMBackup",
    "SSMSource",
    "SecretRef",
    "SecretsManagerSource",
    "SlackChannel",
    "SourceSpec",
    "SqliteBackup",
    "Tier",
    "VaultKVBackup",
    "VaultKVSource",
    "YamlLimits",
    "load_catalog",
]
