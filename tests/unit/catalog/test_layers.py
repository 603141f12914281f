"""Deep merge of configuration layers, with origins that follow the layer that set each value."""

from __future__ import annotations

import pytest

from envsteward.catalog import SecretRef, load_catalog
from envsteward.catalog.layers import Layer, merge_layers, render_layers
from envsteward.tree import iter_nodes

from .conftest import CatalogFactory


def layer(rel: str, data: dict[str, object]) -> Layer:
    origins = {path: f"{rel}:{index + 1}" for index, (path, _) in enumerate(iter_nodes(data))}
    return Layer(rel, data, origins)  # type: ignore[arg-type]


def test_mappings_merge_and_scalars_replace() -> None:
    base = layer("base.yaml", {"a": {"x": 1, "y": 2}, "b": "keep"})
    overlay = layer("over.yaml", {"a": {"y": 3, "z": 4}})
    data, origins = merge_layers([base, overlay])
    assert data == {"a": {"x": 1, "y": 3, "z": 4}, "b": "keep"}
    assert origins[("a", "x")] == "base.yaml:2"
    assert origins[("a", "y")] == "over.yaml:2"
    assert origins[("a", "z")] == "over.yaml:3"
    assert origins[("a",)] == "base.yaml:1"  # the mapping itself was declared in the base


def test_lists_are_replaced_as_a_whole() -> None:
    base = layer("base.yaml", {"hosts": ["a", "b", "c"]})
    overlay = layer("over.yaml", {"hosts": ["z"]})
    data, origins = merge_layers([base, overlay])
    assert data == {"hosts": ["z"]}
    assert origins[("hosts", 0)] == "over.yaml:2"
    assert ("hosts", 1) not in origins
    assert ("hosts", 2) not in origins


def test_null_deletes_a_key_and_everything_below_it() -> None:
    base = layer("base.yaml", {"a": {"deep": {"x": 1}}, "b": 1})
    overlay = layer("over.yaml", {"a": None, "c": None})
    data, origins = merge_layers([base, overlay])
    assert data == {"b": 1}
    assert set(origins) == {("b",)}


def test_a_mapping_replaces_a_scalar_and_back() -> None:
    base = layer("base.yaml", {"a": 1, "b": {"x": 1}})
    overlay = layer("over.yaml", {"a": {"x": 2, "gone": None}, "b": 5})
    data, origins = merge_layers([base, overlay])
    assert data == {"a": {"x": 2}, "b": 5}
    assert origins[("a", "x")] == "over.yaml:2"
    assert ("a", "gone") not in origins
    assert ("b", "x") not in origins


def test_three_layers_in_order() -> None:
    layers = [layer("1.yaml", {"v": 1}), layer("2.yaml", {"v": 2}), layer("3.yaml", {"w": 3})]
    rendered = render_layers("env", layers)
    assert rendered.data == {"v": 2, "w": 3}
    assert rendered.origin("v") == "2.yaml:1"


def test_layers_are_not_modified_by_merging() -> None:
    base = layer("base.yaml", {"a": {"x": 1}})
    overlay = layer("over.yaml", {"a": {"y": [1, 2]}})
    data, _ = merge_layers([base, overlay])
    data["a"]["y"].append(3)
    data["a"]["x"] = 9
    assert base.data == {"a": {"x": 1}}
    assert overlay.data == {"a": {"y": [1, 2]}}


OVERLAY = """
services:
  api:
    instances: 1
    debug: true
db:
  host: 127.0.0.1
  encryption_at_rest: null
  replicas:
    - host: r1
      password: secret+vault://secret/mini/dev/replica#password
    - host: r2
"""


def test_origins_carry_overlay_line_numbers(make_catalog: CatalogFactory) -> None:
    catalog = load_catalog(make_catalog(**{"config/dev.yaml": OVERLAY}))
    rendered = catalog.render("dev")
    assert rendered.origin("services.api.instances") == "config/dev.yaml:3"
    assert rendered.origin("services.api.debug") == "config/dev.yaml:4"
    assert rendered.origin("services.api.log_level") == "config/base.yaml:5"
    assert rendered.origin("db.host") == "config/dev.yaml:6"
    assert rendered.origin("db.replicas") == "config/dev.yaml:8"
    assert rendered.origin("db.replicas[0].host") == "config/dev.yaml:9"
    assert rendered.origin("db.replicas[0].password") == "config/dev.yaml:10"
    assert rendered.origin("db.replicas[1]") == "config/dev.yaml:11"
    assert rendered.origin("db.encryption_at_rest") is None
    assert not rendered.has("db.encryption_at_rest")
    assert rendered.get("db.encryption_at_rest", "absent") == "absent"
    assert rendered.secret_refs == {
        "db.replicas[0].password": SecretRef("vault", "secret/mini/dev/replica", "password")
    }
    assert dict(rendered.leaves())["services.api.instances"] == 1
    # the production environment of the same catalog is untouched by the dev overlay
    assert catalog.render("prod").get("db.encryption_at_rest") is True


def test_yaml_dates_become_iso_strings(make_catalog: CatalogFactory) -> None:
    catalog = load_catalog(make_catalog(**{"config/dev.yaml": "release:\n  day: 2025-03-01\n"}))
    assert catalog.render("dev").get("release.day") == "2025-03-01"


def test_keys_with_dots_are_quoted_in_paths(make_catalog: CatalogFactory) -> None:
    catalog = load_catalog(make_catalog(**{"config/dev.yaml": "labels:\n  app.example.com/name: api\n"}))
    rendered = catalog.render("dev")
    assert rendered.origin('labels["app.example.com/name"]') == "config/dev.yaml:2"
    assert rendered.get('labels["app.example.com/name"]') == "api"


def test_anchors_and_aliases_are_expanded(make_catalog: CatalogFactory) -> None:
    text = "defaults: &d\n  retries: 3\nservices:\n  api:\n    <<: *d\n    port: 1\n"
    rendered = load_catalog(make_catalog(**{"config/dev.yaml": text})).render("dev")
    assert rendered.get("services.api") == {
        "instances": 3,
        "debug": False,
        "log_level": "info",
        "retries": 3,
        "port": 1,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("secret+vault://secret/app/db#password", SecretRef("vault", "secret/app/db", "password")),
        ("secret+aws-sm://prod/db#password", SecretRef("aws-sm", "prod/db", "password")),
        ("secret+aws-sm://prod/db", SecretRef("aws-sm", "prod/db", None)),
        ("secret+ssm:///app/prod/LOG_LEVEL", SecretRef("ssm", "/app/prod/LOG_LEVEL", None)),
        ("secret+env://VAR", SecretRef("env", "VAR", None)),
        ("vault://secret/app/db#password", "vault://secret/app/db#password"),  # no prefix: a plain string
    ],
)
def test_secret_reference_syntax(make_catalog: CatalogFactory, text: str, expected: object) -> None:
    rendered = load_catalog(make_catalog(**{"config/dev.yaml": f"x:\n  value: {text}\n"})).render("dev")
    assert rendered.get("x.value") == expected
    assert ("x.value" in rendered.secret_refs) == isinstance(expected, SecretRef)
