"""FileSource (YAML and JSON files) and HTTPJSONSource (a loopback http.server)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from pydantic import SecretStr

from envsteward.adapters.file_source import FileSource
from envsteward.adapters.http_source import HTTPJSONSource
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.ports import ConfigSource
from tests.fixtures._proc import free_port
from tests.fixtures.standins import serve_http

YAML_TEXT = """\
# Application settings for staging
app:
  replicas: 3          # scaled for the load test
  image: "registry.example.test/app:1.4.2"
  features:
    - search
    - export
db:
  host: db.staging.internal
  port: 5432
  since: 2024-03-01
"""

SEEDED_TOKEN = "http-source-token-5e1f0a"


# ---------------------------------------------------------------------------------------------------------
# FileSource
# ---------------------------------------------------------------------------------------------------------


def test_yaml_read(tmp_path: Path) -> None:
    path = tmp_path / "staging.yaml"
    path.write_text(YAML_TEXT)
    source = FileSource("files", path, writable=False)
    assert isinstance(source, ConfigSource)
    data = source.read()
    assert data == {
        "app": {"replicas": 3, "image": "registry.example.test/app:1.4.2", "features": ["search", "export"]},
        "db": {"host": "db.staging.internal", "port": 5432, "since": "2024-03-01"},
    }
    assert type(data["app"]) is dict
    assert type(data["app"]["features"]) is list


def test_yaml_scalar_types_become_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text("a: &flag true\nb: *flag\nc: false\nd: 1.5\ne: ~\nf: 0o17\ng: !!binary aGVsbG8=\n")
    data = FileSource("f", path, writable=False).read()
    assert data == {"a": True, "b": True, "c": False, "d": 1.5, "e": None, "f": 15, "g": "aGVsbG8="}
    assert [type(data[k]) for k in "abcdf"] == [bool, bool, bool, float, int]


def test_yaml_write_updates_one_leaf_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "staging.yml"
    path.write_text(YAML_TEXT)
    path.chmod(0o640)
    source = FileSource("files", path, writable=True)
    source.write(("app", "replicas"), 5)
    source.write(("cache", "redis", "ttl"), 300)
    text = path.read_text()
    assert "# Application settings for staging" in text
    assert "# scaled for the load test" in text
    assert '"registry.example.test/app:1.4.2"' in text  # quoting preserved
    assert "replicas: 5" in text
    data = source.read()
    assert data["app"]["replicas"] == 5
    assert data["cache"] == {"redis": {"ttl": 300}}
    assert data["db"] == {"host": "db.staging.internal", "port": 5432, "since": "2024-03-01"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["staging.yml"]  # no temp files left


def test_json_read_and_write(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"b": {"enabled": False}, "a": 1}))
    source = FileSource("flags", path, writable=True)
    assert source.read() == {"b": {"enabled": False}, "a": 1}
    source.write(("b", "enabled"), True)
    source.write(("c",), {"nested": [1, 2]})
    assert json.loads(path.read_text()) == {"b": {"enabled": True}, "a": 1, "c": {"nested": [1, 2]}}
    assert list(json.loads(path.read_text())) == ["b", "a", "c"]  # key order kept
    assert path.read_text().startswith("{\n  ")


def test_empty_yaml_is_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    source = FileSource("f", path, writable=True)
    assert source.read() == {}
    source.write(("a", "b"), "c")
    assert source.read() == {"a": {"b": "c"}}


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    source = FileSource("f", tmp_path / "missing.yaml", writable=True)
    with pytest.raises(NotFoundError, match=r"missing\.yaml does not exist"):
        source.read()
    with pytest.raises(NotFoundError):
        source.write(("a",), 1)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("app:\n  replicas: 3\n  image: [unclosed\nother: 1\n")
    with pytest.raises(PermanentError, match=r"bad\.yaml, line \d+, column \d+: malformed YAML") as caught:
        FileSource("f", path, writable=False).read()
    assert not caught.value.transient
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(PermanentError, match=r"bad\.yaml, line 2"):
        FileSource("f", path, writable=False).read()


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(PermanentError, match=r"bad\.json, line 4, column 1: malformed JSON"):
        FileSource("f", path, writable=False).read()


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(PermanentError, match="top level must be a mapping"):
        FileSource("f", path, writable=False).read()


def test_write_refusals(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    with pytest.raises(PermanentError, match="read-only"):
        FileSource("f", path, writable=False).write(("a",), 2)
    writable = FileSource("f", path, writable=True)
    with pytest.raises(PermanentError, match="a holds a value, not a mapping"):
        writable.write(("a", "b"), 2)
    with pytest.raises(PermanentError, match="key path is empty"):
        writable.write((), 2)
    assert path.read_text() == "a: 1\n"


def test_unknown_suffix_is_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"\.yaml, \.yml or \.json"):
        FileSource("f", tmp_path / "settings.ini", writable=False)
    path = tmp_path / "settings.conf"
    path.write_text('{"a": 1}')
    assert FileSource("f", path, writable=False, file_format="json").read() == {"a": 1}


def _read_as_unprivileged(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    if os.geteuid() == 0:  # root ignores file modes: drop to nobody so the kernel really says EACCES
        os.setgid(65534)
        os.setuid(65534)
    try:
        FileSource("f", Path(path), writable=False).read()
        out.put("no error")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_unreadable_file_is_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("a: 1\n")
    path.chmod(0o000)
    ctx = multiprocessing.get_context("spawn")  # not fork: the session may run threads
    out = ctx.Queue()
    proc = ctx.Process(target=_read_as_unprivileged, args=(str(path), out))
    proc.start()
    result = out.get(timeout=20)
    proc.join(timeout=20)
    assert result.startswith("PermissionDeniedError: file: read: "), result
    assert "secret.yaml: permission denied" in result


# ---------------------------------------------------------------------------------------------------------
# HTTPJSONSource
# ---------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[str, tuple[int, str, bytes]] = {
        "/config": (
            200,
            "application/json",
            json.dumps({"feature": {"search": True}, "replicas": 3}).encode(),
        ),
        "/list": (200, "application/json", b"[1, 2, 3]"),
        "/html": (200, "text/html", b"<html><body>maintenance</body></html>"),
        "/broken-json": (200, "application/json", b'{"a": 1,\n "b": }'),
        "/missing": (404, "application/json", b'{"error": "not found"}'),
        "/gone": (410, "text/plain", b"gone"),
        "/forbidden": (403, "application/json", b'{"error": "forbidden"}'),
        "/boom": (500, "text/plain", b"internal error"),
        "/unavailable": (503, "text/plain", b"try later"),
        "/throttled": (429, "text/plain", b"slow down"),
        "/teapot": (418, "text/plain", b"I'm a teapot"),
    }

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/slow":
            time.sleep(1.5)
            self._reply(200, "application/json", b"{}")
        elif path == "/auth":
            auth = self.headers.get("Authorization", "")
            if auth == f"Bearer {SEEDED_TOKEN}":
                self._reply(200, "application/json", b'{"ok": true}')
            else:
                # A careless server that echoes the credential it rejected.
                self._reply(401, "text/plain", f"bad credential: {auth}".encode())
        elif path == "/auth-echo-denied":
            auth = self.headers.get("Authorization", "")
            self._reply(403, "text/plain", f"token {auth} may not read this".encode())
        elif path == "/redirect":
            target = parse_qs(urlsplit(self.path).query)["to"][0]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path in self.routes:
            self._reply(*self.routes[path])
        else:
            self._reply(404, "text/plain", b"no route")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    with serve_http(ThreadingHTTPServer(("127.0.0.1", 0), _Handler)) as base:
        yield base


def test_http_read(http_base: str) -> None:
    source = HTTPJSONSource("svc", f"{http_base}/config", timeout_seconds=5)
    assert isinstance(source, ConfigSource)
    assert source.writable is False
    assert source.read() == {"feature": {"search": True}, "replicas": 3}


def test_http_is_read_only(http_base: str) -> None:
    with pytest.raises(PermanentError, match="read-only"):
        HTTPJSONSource("svc", f"{http_base}/config", 5).write(("a",), 1)


@pytest.mark.parametrize(
    ("path", "error", "text"),
    [
        ("/missing", NotFoundError, "HTTP 404"),
        ("/gone", NotFoundError, "HTTP 410"),
        ("/forbidden", PermissionDeniedError, "HTTP 403"),
        ("/teapot", PermanentError, "HTTP 418"),
        ("/boom", TransientError, "HTTP 500"),
        ("/unavailable", TransientError, "HTTP 503"),
        ("/throttled", TransientError, "HTTP 429"),
        ("/html", PermanentError, "not JSON"),
        ("/broken-json", PermanentError, "not JSON (line 2, column"),
        ("/list", PermanentError, "not an object"),
    ],
)
def test_http_error_mapping(http_base: str, path: str, error: type[Exception], text: str) -> None:
    source = HTTPJSONSource("svc", f"{http_base}{path}?token=query-secret", timeout_seconds=5)
    with pytest.raises(error) as caught:
        source.read()
    assert type(caught.value) is error
    message = str(caught.value)
    assert text in message
    assert message.startswith(f"http: read svc (GET {http_base}{path})")
    assert "query-secret" not in message


def test_http_timeout_is_transient(http_base: str) -> None:
    source = HTTPJSONSource("svc", f"{http_base}/slow", timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out"):
        source.read()
    assert time.monotonic() - started < 1.4


def test_http_closed_port_is_transient() -> None:
    source = HTTPJSONSource("svc", f"http://127.0.0.1:{free_port()}/config", timeout_seconds=2)
    with pytest.raises(TransientError, match="connection refused") as caught:
        source.read()
    assert caught.value.transient


def test_http_bad_url_is_permanent() -> None:
    with pytest.raises(PermanentError, match="invalid URL"):
        HTTPJSONSource("svc", "ftp://127.0.0.1/config", 2).read()


def test_http_secret_header_is_sent_but_never_shown(http_base: str) -> None:
    good = HTTPJSONSource(
        "svc", f"{http_base}/auth", 5, headers={"Authorization": SecretStr(f"Bearer {SEEDED_TOKEN}")}
    )
    assert good.read() == {"ok": True}
    assert SEEDED_TOKEN not in repr(good)

    wrong = HTTPJSONSource(
        "svc", f"{http_base}/auth", 5, headers={"Authorization": SecretStr("Bearer wrong-s3cret-value")}
    )
    with pytest.raises(AuthenticationError) as caught:
        wrong.read()
    assert "wrong-s3cret-value" not in str(caught.value)

    denied = HTTPJSONSource(
        "svc",
        f"{http_base}/auth-echo-denied",
        5,
        headers={"Authorization": SecretStr(f"Bearer {SEEDED_TOKEN}")},
    )
    with pytest.raises(PermissionDeniedError) as denied_error:
        denied.read()
    assert SEEDED_TOKEN not in str(denied_error.value)
    assert "<redacted>" in str(denied_error.value)


class _Recorder(BaseHTTPRequestHandler):
    """Another origin: records the headers of every request it gets."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        body = b'{"elsewhere": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_http_secret_headers_never_follow_a_redirect_to_another_origin(http_base: str) -> None:
    _Recorder.seen.clear()
    with serve_http(ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)) as other:
        away = f"{http_base}/redirect?to={quote(other + '/config', safe='')}"
        keyed = HTTPJSONSource("svc", away, 5, headers={"X-Api-Key": SecretStr(SEEDED_TOKEN)})
        with pytest.raises(PermanentError, match="another origin") as caught:
            keyed.read()
        assert _Recorder.seen == []
        assert SEEDED_TOKEN not in str(caught.value)
        # Without secret headers a redirect is followed wherever it goes.
        assert HTTPJSONSource("svc", away, 5).read() == {"elsewhere": True}
        assert len(_Recorder.seen) == 1
    # Within the origin, secret headers go along.
    same = f"{http_base}/redirect?to={quote('/auth', safe='')}"
    bearer = HTTPJSONSource("svc", same, 5, headers={"Authorization": SecretStr(f"Bearer {SEEDED_TOKEN}")})
    assert bearer.read() == {"ok": True}


def test_http_url_credentials_are_not_shown() -> None:
    source = HTTPJSONSource("svc", f"http://user:url-s3cret@127.0.0.1:{free_port()}/c", 1)
    with pytest.raises(TransientError) as caught:
        source.read()
    assert "url-s3cret" not in str(caught.value)
    assert "url-s3cret" not in repr(source)
