"""The one factory of boto3 clients (Cloud Custodian's SessionFactory idea).

``AWSClients(settings)`` builds one boto3 Session and caches one client per (service, region), each with
the settings' endpoint URL (moto/LocalStack; None for real AWS), timeouts and botocore retries. The same
code runs against AWS and moto: only ``endpoint_url`` differs. Nothing else in envsteward builds a client.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from envsteward.adapters.aws_errors import aws_errors
from envsteward.settings import AWSSettings


class AWSClients:
    """Cached boto3 clients for every service and region envsteward uses. Thread-safe."""

    def __init__(self, settings: AWSSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        from envsteward.adapters._http import safe_url

        endpoint = safe_url(self.settings.endpoint_url) if self.settings.endpoint_url else None
        return f"AWSClients(region={self.region!r}, endpoint_url={endpoint!r})"

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def dr_region(self) -> str:
        return self.settings.dr_region

    def _config(self, region: str) -> Config:
        return Config(
            region_name=region,
            connect_timeout=self.settings.connect_timeout_seconds,
            read_timeout=self.settings.read_timeout_seconds,
            retries={"max_attempts": self.settings.max_attempts, "mode": "standard"},
            # moto/LocalStack listen on one host: bucket names go in the path, not the host name
            s3={"addressing_style": "path"} if self.settings.endpoint_url else None,
            user_agent_extra="envsteward",
        )

    def client(self, service: str, region: str | None = None) -> Any:
        """The cached client for ``service`` in ``region`` (default: settings.region).

        Raises ConfigurationError for an unknown profile or service, AuthenticationError when the
        credential chain fails while building the session (credentials are otherwise resolved lazily, on
        the first call, and then raise AuthenticationError from that call).
        """
        region = region or self.settings.region
        with self._lock:
            cached = self._clients.get((service, region))
            if cached is not None:
                return cached
            with aws_errors(service, "create client", region):
                if self._session is None:
                    self._session = boto3.session.Session(profile_name=self.settings.profile)
                built = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.settings.endpoint_url,
                    config=self._config(region),
                )
            self._clients[(service, region)] = built
            return built

    def s3(self, region: str | None = None) -> Any:
        return self.client("s3", region)

    def ssm(self, region: str | None = None) -> Any:
        return self.client("ssm", region)

    def secretsmanager(self, region: str | None = None) -> Any:
        return self.client("secretsmanager", region)

    def kms(self, region: str | None = None) -> Any:
        return self.client("kms", region)
