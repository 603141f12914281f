"""Signed audit checkpoints with the embedded default: an ed25519 key outside ENVSTEWARD_HOME, checkpoints
in ``<home>/audit-checkpoints``; a consistent rewrite, forged or tampered checkpoints, a missing checkpoint
store and a cut log are all rejected; ``audit verify`` writes nothing."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from envsteward.audit import AuditLog, Checkpoint, JsonLinesFileSink
from envsteward.audit.checkpoints import checkpoint_message, fingerprint_public_key
from envsteward.audit.record import canonical_json
from envsteward.audit.verify import REMOVED, REWRITTEN
from envsteward.cli import audit as audit_cli
from envsteward.errors import ConfigurationError, IntegrityError
from envsteward.services import Services
from envsteward.settings import AuditSettings, Settings
from tests.unit.audit import tampering as t

SEEDED_SECRET = "ckpt-SEEDED-secret-71b3"
runner = CliRunner()
app = typer.Typer()
app.add_typer(audit_cli.app, name="audit")


class Clock:
    def __init__(self, step: timedelta = timedelta(minutes=1)) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    return {
        "home": tmp_path / "home",
        "key": tmp_path / "config" / "audit-signing.key",
        "pins": tmp_path / "config" / "audit-trusted-keys",
    }


def _settings(world: dict[str, Path], **audit: object) -> Settings:
    return Settings(
        home=world["home"],
        actor="alice",
        audit=AuditSettings.model_validate(
            {
                "checkpoint_every": 10,
                "signing_key_file": world["key"],
                "trusted_keys_file": world["pins"],
                **audit,
            }
        ),
    )


def _log(world: dict[str, Path], clock: Clock | None = None, **audit: object) -> AuditLog:
    log = Services(_settings(world, **audit)).audit_log()
    if clock is not None:
        log.clock = clock
    return log


def _fill(log: AuditLog, count: int) -> None:
    for index in range(count):
        log.append("drift.healed", target=f"app/key{index}", environment="staging", details={"n": index})


def _log_file(world: dict[str, Path]) -> Path:
    return world["home"] / "audit" / "audit.jsonl"


def _checkpoint_dir(world: dict[str, Path]) -> Path:
    return world["home"] / "audit-checkpoints"


def _lines(world: dict[str, Path]) -> list[str]:
    return _log_file(world).read_text(encoding="utf-8").splitlines()


def _write_lines(world: dict[str, Path], lines: list[str]) -> None:
    _log_file(world).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _cli(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(world["home"].parent)
    monkeypatch.setenv("ENVSTEWARD_HOME", str(world["home"]))
    monkeypatch.setenv("ENVSTEWARD_STORAGE__KIND", "filesystem")
    monkeypatch.setenv("ENVSTEWARD_AUDIT__CHECKPOINT_EVERY", "10")
    monkeypatch.setenv("ENVSTEWARD_AUDIT__SIGNING_KEY_FILE", str(world["key"]))
    monkeypatch.setenv("ENVSTEWARD_AUDIT__TRUSTED_KEYS_FILE", str(world["pins"]))
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["audit", *args])
    return result.exit_code, result.output


def test_checkpoints_every_n_records_signed_by_a_key_outside_home(world: dict[str, Path]) -> None:
    log = _log(world)
    _fill(log, 25)
    stored = sorted(
        path.name for path in _checkpoint_dir(world).glob("*.json") if not path.name.startswith(".")
    )
    assert stored == ["000000000001.json", "000000000011.json", "000000000021.json"]
    # The private key is outside home, owner-only; its fingerprint is pinned next to it.
    assert world["home"] not in world["key"].parents
    assert stat.S_IMODE(os.stat(world["key"]).st_mode) == 0o600
    checkpoint = Checkpoint.model_validate_json((_checkpoint_dir(world) / "000000000021.json").read_bytes())
    assert checkpoint.key_fingerprint in world["pins"].read_text(encoding="utf-8")
    assert checkpoint.signer.algorithm == "ed25519"
    assert checkpoint.head_hash == json.loads(_lines(world)[20])["hash"]

    outcome = log.verify_with_checkpoints()
    assert outcome.ok, outcome.failure_line()
    assert outcome.checkpoints.checkpoint is not None
    assert outcome.checkpoints.checkpoint.seq == 21
    assert (outcome.checkpoints.unanchored_count, outcome.checkpoints.first_unanchored_seq) == (4, 22)


def test_at_least_hourly_while_records_are_appended(world: dict[str, Path]) -> None:
    log = _log(world, Clock(step=timedelta(minutes=25)), checkpoint_every=1000)
    _fill(log, 6)  # 09:25 .. 11:30: checkpoints at record 1, then the first record an hour or more later
    stored = sorted(path.name for path in _checkpoint_dir(world).glob("0*.json"))
    assert stored == ["000000000001.json", "000000000004.json"]


def test_a_consistent_rewrite_is_rejected_through_the_checkpoint(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _log(world)
    _fill(log, 25)
    _write_lines(world, t.rewrite_consistently(_lines(world), 3, "actor", "mallory"))

    assert log.verify().ok  # the chain alone cannot tell
    outcome = log.verify_with_checkpoints()
    assert not outcome.ok
    assert outcome.chain.kind == REWRITTEN
    assert outcome.chain.first_bad_seq == 21
    code, output = _cli(world, monkeypatch, "verify")
    assert code == 1
    first_line = output.splitlines()[0]
    assert first_line.startswith("audit log BROKEN at record 21")
    assert "rewritten" in first_line
    # ... and `audit checkpoint` refuses to sign the rewritten log.
    assert log.checkpointer is not None
    with pytest.raises(IntegrityError, match="refusing to sign"):
        log.checkpointer.checkpoint(log)


def test_records_cut_below_the_latest_checkpoint_are_detected(world: dict[str, Path]) -> None:
    log = _log(world)
    _fill(log, 25)
    _write_lines(world, _lines(world)[:15])
    outcome = log.verify_with_checkpoints()
    assert not outcome.ok
    assert (outcome.chain.kind, outcome.chain.first_bad_seq) == (REMOVED, 16)
    assert "truncated" in (outcome.failure_line() or "")


def test_a_tampered_checkpoint_is_reported_and_skipped(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _log(world)
    _fill(log, 25)
    latest = _checkpoint_dir(world) / "000000000021.json"
    document = json.loads(latest.read_bytes())
    document["head_hash"] = "f" * 64
    latest.write_text(canonical_json(document), encoding="utf-8")

    outcome = log.verify_with_checkpoints()
    assert not outcome.ok
    assert outcome.chain.ok
    assert outcome.checkpoints.checkpoint is not None
    assert outcome.checkpoints.checkpoint.seq == 11  # fell back to the previous valid one
    assert [(bad.seq, bad.reason) for bad in outcome.checkpoints.bad] == [
        (21, "bad signature (checkpoint altered or forged)")
    ]
    code, output = _cli(world, monkeypatch, "verify")
    assert code == 1
    assert output.splitlines()[0].startswith("audit checkpoints BROKEN: 1 checkpoint(s) skipped")
    assert "record 21" in output.splitlines()[0]


def test_checkpoints_re_signed_with_another_key_are_not_trusted(world: dict[str, Path]) -> None:
    """An attacker rewrites the log AND every checkpoint, signing them with a key of their own."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    log = _log(world)
    _fill(log, 25)
    lines = t.rewrite_consistently(_lines(world), 3, "actor", "mallory")
    _write_lines(world, lines)
    attacker = ed25519.Ed25519PrivateKey.generate()
    public = attacker.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in _checkpoint_dir(world).glob("0*.json"):
        document = json.loads(path.read_bytes())
        seq = document["seq"]
        document.update(
            head_hash=json.loads(lines[seq - 1])["hash"],
            public_key=base64.b64encode(public).decode(),
            key_fingerprint=fingerprint_public_key(public),
        )
        body = {key: value for key, value in document.items() if key != "signature"}
        document["signature"] = base64.b64encode(attacker.sign(checkpoint_message(body))).decode()
        path.write_text(canonical_json(document), encoding="utf-8")

    outcome = log.verify_with_checkpoints()
    assert not outcome.ok
    assert outcome.checkpoints.checkpoint is None
    assert len(outcome.checkpoints.bad) == 3
    assert all("not pinned" in bad.reason for bad in outcome.checkpoints.bad)


def test_a_missing_checkpoint_store_fails_closed(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    log = _log(world)
    _fill(log, 5)
    shutil.rmtree(_checkpoint_dir(world))
    outcome = log.verify_with_checkpoints()
    assert not outcome.ok
    assert (outcome.failure_line() or "").startswith("audit checkpoints MISSING")
    assert _cli(world, monkeypatch, "verify")[0] == 1


def test_deleted_newer_checkpoints_show_as_overdue(world: dict[str, Path]) -> None:
    log = _log(world)
    _fill(log, 25)
    (_checkpoint_dir(world) / "000000000021.json").unlink()
    (_checkpoint_dir(world) / "000000000011.json").unlink()
    outcome = log.verify_with_checkpoints()
    assert not outcome.ok
    assert (outcome.failure_line() or "").startswith(
        "audit checkpoints OVERDUE: 24 records after checkpoint 1"
    )


def test_verify_is_read_only_it_creates_no_key_and_writes_no_checkpoint(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(AuditLog(JsonLinesFileSink(_log_file(world)), "alice"), 3)  # written without checkpoints
    code, output = _cli(world, monkeypatch, "verify")
    assert code == 1
    assert "UNTRUSTED" in output.splitlines()[0]
    assert not world["key"].exists()
    assert not world["pins"].exists()
    assert not _checkpoint_dir(world).exists()

    # `audit checkpoint` is a writing command: it creates the key, pins it and signs the head.
    code, output = _cli(world, monkeypatch, "checkpoint", "--json")
    assert code == 0, output
    assert json.loads(output)["written"] is True
    assert world["key"].exists()
    assert _cli(world, monkeypatch, "verify")[0] == 0
    code, output = _cli(world, monkeypatch, "checkpoint")
    assert (code, output.strip()) == (0, "record 3 (the head) is checkpointed already")


def test_a_signing_key_inside_home_is_refused(world: dict[str, Path]) -> None:
    settings = _settings(world, signing_key_file=world["home"] / "keys" / "audit-signing.key")
    signer = Services(settings).checkpoint_signer()
    with pytest.raises(ConfigurationError, match="inside ENVSTEWARD_HOME"):
        signer.signing_key()
    # An append still succeeds (the record is stored; the checkpoint failure is only logged).
    log = Services(settings).audit_log()
    log.append("drift.healed", target="a")
    assert log.verify().ok
    assert not (world["home"] / "keys" / "audit-signing.key").exists()


def test_pinning_in_settings_is_enough_to_verify_elsewhere(world: dict[str, Path], tmp_path: Path) -> None:
    log = _log(world)
    _fill(log, 12)
    fingerprint = world["pins"].read_text(encoding="utf-8").split()[0]
    # An auditor's machine: no key file, no pin file, only the pinned fingerprint in settings.
    auditor = dict(world, key=tmp_path / "elsewhere" / "none.key", pins=tmp_path / "elsewhere" / "pins")
    assert _log(auditor, trusted_keys=(fingerprint,)).verify_with_checkpoints().ok
    assert not _log(auditor).verify_with_checkpoints().ok
    assert not (tmp_path / "elsewhere").exists()


def test_no_secret_or_key_material_in_outputs(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _log(world)
    for index in range(12):
        log.append("drift.healed", target=f"k{index}", details={"value": log.fingerprint(SEEDED_SECRET)})
    private_pem = world["key"].read_text(encoding="ascii")
    private_body = "".join(line for line in private_pem.splitlines() if "-----" not in line)
    outputs = [_cli(world, monkeypatch, *args)[1] for args in (["verify"], ["verify", "--json"])]
    outputs.append(_cli(world, monkeypatch, "checkpoint", "--json")[1])
    outputs += [path.read_text(encoding="utf-8") for path in _checkpoint_dir(world).glob("0*.json")]
    blob = "\n".join(outputs) + _log_file(world).read_text(encoding="utf-8")
    assert SEEDED_SECRET not in blob
    assert private_body not in blob
    assert private_body[:20] not in blob
