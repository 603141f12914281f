"""The demo's OpenBao root token stays off the command line (``ps``) and out of the server's log."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import hvac
from envsteward.deployments.demo import start_openbao
from envsteward.deployments.local_stack import LocalStack, _copy_redacted

from tests.fixtures._proc import free_port


def test_root_token_goes_through_the_environment_and_is_redacted_in_the_log(tmp_path: Path) -> None:
    token = f"demo-SEEDED-{secrets.token_hex(8)}"
    port = free_port()
    stack = LocalStack(tmp_path)
    try:
        start_openbao(stack, port, token)
        [(_name, proc)] = stack.processes
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert token.encode() not in cmdline
        client = hvac.Client(url=f"http://127.0.0.1:{port}", token=token, timeout=5)
        assert client.is_authenticated()  # the server did take the token from the environment
    finally:
        stack.stop()
    log = (tmp_path / "logs" / "openbao.log").read_text()
    assert token not in log
    # OpenBao prints its dev banner (with the root token) when it flushes stdout, often only at exit and
    # not always before a loaded machine's terminate: where it made it to the log, it is redacted
    if "Root Token:" in log:
        assert "Root Token: <redacted>" in log


def test_the_log_copier_redacts_every_secret_even_across_many_lines(tmp_path: Path) -> None:
    token = f"demo-SEEDED-{secrets.token_hex(8)}"
    lines = [b"starting\n", f"Root Token: {token}\n".encode(), b"x" * 70_000 + token.encode() + b"\n"]
    log_path = tmp_path / "copied.log"
    _copy_redacted(io.BytesIO(b"".join(lines)), log_path, [token.encode()])
    copied = log_path.read_text()
    assert token not in copied
    assert "Root Token: <redacted>" in copied
    assert copied.count("<redacted>") == 2
