"""Loading YAML/JSON documents with line origins, and clear errors for bad files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from envsteward.drift.documents import DocumentError, load_document
from envsteward.yamlbudget import YamlLimits


def test_yaml_with_origins(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "a: 1\nb:\n  c: [1, 2.0]\n  d:\n    - name: x\n      on: yes\nwhen: 2024-01-01\nt: !custom text\n"
    )
    data, origins = load_document(path, label="A")
    assert data == {
        "a": 1,
        "b": {"c": [1, 2.0], "d": [{"name": "x", "on": "yes"}]},
        "when": "2024-01-01",
        "t": "text",
    }
    assert type(data["b"]["c"][1]) is float
    assert type(data) is dict
    assert origins["a"] == "A:1"
    assert origins["b.d[0].on"] == "A:6"
    assert origins["when"] == "A:7"


def test_json_with_origins(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{\n  "a": 1,\n  "b": {\n    "c": true\n  }\n}\n')
    data, origins = load_document(path, label="B")
    assert data == {"a": 1, "b": {"c": True}}
    assert origins["b.c"] == "B:4"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.json", '{\n  "a": 1,\n  "b": [1,\n}\n', r"bad\.json: line 4, column 1: invalid JSON"),
        ("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n", r"bad\.yaml: line \d+, column \d+: invalid YAML"),
        ("tabs.yaml", "a:\n\t- 1\n", r"tabs\.yaml: line 2, column 1: invalid YAML"),
    ],
)
def test_syntax_errors_name_file_and_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DocumentError, match=expected):
        load_document(path)


def test_duplicate_key_error_never_echoes_the_value(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("password: first-Secret-1\npassword: second-Secret-2\n")
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    message = str(caught.value)
    assert "line 2" in message
    assert "duplicate key" in message
    assert "Secret-1" not in message
    assert "Secret-2" not in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such file"):
        load_document(tmp_path / "nope.yaml")
    with pytest.raises(DocumentError, match="is a directory"):
        load_document(tmp_path)


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join(f'*{previous}' for _ in range(9))}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_its_line_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(_alias_bomb())
    started = time.perf_counter()
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert time.perf_counter() - started < 5  # generous: the point is that it does not expand 9**9 nodes
    message = str(caught.value)
    assert message.startswith(f"{path}: line 6: alias *e expands past 500,000 nodes")
    assert "ENVSTEWARD_CATALOG_MAX_NODES" in message


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("deep.yaml", "a: " + "[" * 150 + "]" * 150 + "\n", 1),
        ("deep.json", '{"a":\n' + "[" * 150 + "]" * 150 + "\n}\n", 2),
    ],
)
def test_deep_nesting_is_refused_with_its_limit(tmp_path: Path, name: str, text: str, line: int) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DocumentError, match=rf"{name}: line {line}: nesting deeper than 100 levels"):
        load_document(path)


def test_json_too_deep_for_the_parser_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "abyss.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DocumentError, match=r"abyss\.json: invalid JSON: nested too deeply \(max_depth 100"):
        load_document(path)


def test_a_file_past_the_size_limit_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("".join(f"k{index:03}: v\n" for index in range(1000)))  # 8,000 bytes
    monkeypatch.setenv("ENVSTEWARD_CATALOG_MAX_FILE_BYTES", "1000")
    with pytest.raises(DocumentError, match=r"big\.yaml: the file is 8,000 bytes, above the limit"):
        load_document(path)
    data, _ = load_document(path, limits=YamlLimits(max_file_bytes=10_000))
    assert len(data) == 1000


def test_a_bad_limit_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\n")
    monkeypatch.setenv("ENVSTEWARD_CATALOG_MAX_NODES", "lots")
    with pytest.raises(DocumentError, match="ENVSTEWARD_CATALOG_MAX_NODES must be a positive integer"):
        load_document(path)
