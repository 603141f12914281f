"""Loading YAML/JSON documents with line origins, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsteward.drift.documents import DocumentError, load_document


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
