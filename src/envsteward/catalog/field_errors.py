"""Pydantic validation errors -> the file's line, the field's path and a message a person can act on."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from envsteward.catalog.problems import ProblemSink
from envsteward.catalog.yamlio import YamlFile
from envsteward.tree import PathTuple, format_path, value_at


def report_validation_error(
    sink: ProblemSink, doc: YamlFile, prefix: PathTuple, exc: ValidationError, root_type: Any
) -> None:
    """Report each error of ``exc`` (raised validating the value at ``prefix`` of ``doc`` as ``root_type``)
    to ``sink`` with its line and field; several errors at one field become one problem."""
    grouped: dict[tuple[int, str], list[str]] = {}
    for error in exc.errors(include_url=False):
        line, field_name, message = describe(doc, prefix, error, root_type)
        messages = grouped.setdefault((line, field_name), [])
        if message not in messages:
            messages.append(message)
    for (line, field_name), messages in grouped.items():
        text = messages[0] if len(messages) == 1 else "invalid value: " + "; or ".join(messages)
        sink.add(doc.display, line, field_name, text)


def describe(doc: YamlFile, prefix: PathTuple, error: ErrorDetails, root_type: Any) -> tuple[int, str, str]:
    loc = tuple(error["loc"])
    node: Any = value_at(doc.data, prefix)
    matched: list[str | int] = list(prefix)
    field_parts: list[str | int] = list(prefix)
    missing_field: str | None = None
    for index, part in enumerate(loc):
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        else:
            if index == len(loc) - 1 and isinstance(part, str) and isinstance(node, dict):
                missing_field = part
                field_parts.append(part)
            continue  # a union tag or validator name in the loc: not part of the document
        matched.append(part)
        field_parts.append(part)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(root_type, loc[:-1])
        message = f"unknown field {loc[-1]!r}"
        if allowed:
            message += f"; allowed fields: {', '.join(allowed)}"
    elif kind == "missing":
        message = f"missing required field {missing_field or loc[-1]!r}"
    elif kind == "union_tag_invalid":
        tags = ctx.get("expected_tags", "")
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        message = f"unknown {discriminator} {ctx.get('tag')!r}: expected one of {tags}"
        matched.append(discriminator)
        field_parts.append(discriminator)
    elif kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        options = _discriminator_tags(root_type, loc)
        message = f"missing required field {discriminator!r}" + (f" (one of {options})" if options else "")
        field_parts.append(discriminator)
    line = doc.line_of(tuple(matched))
    return line, format_path(field_parts), message


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if _is_union(tp) and len(args) == 1:
            tp = args[0]
            continue
        return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag_of(model: Any) -> str | None:
    if isinstance(model, type) and issubclass(model, BaseModel) and "kind" in model.model_fields:
        values = typing.get_args(model.model_fields["kind"].annotation)
        return str(values[0]) if values else None
    return None


def _walk_type(root_type: Any, loc: Sequence[str | int]) -> Any:
    tp = root_type
    for part in loc:
        tp = _unwrap(tp)
        if _is_union(tp):
            members = {_tag_of(member): member for member in typing.get_args(tp)}
            if part in members:
                tp = members[part]
                continue
            return None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return None
            tp = info.annotation
        elif typing.get_origin(tp) is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def _allowed_fields(root_type: Any, loc: Sequence[str | int]) -> list[str]:
    tp = _walk_type(root_type, loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _discriminator_tags(root_type: Any, loc: Sequence[str | int]) -> str:
    tp = _walk_type(root_type, loc)
    if tp is not None and _is_union(tp):
        tags = [tag for tag in (_tag_of(member) for member in typing.get_args(tp)) if tag]
        return ", ".join(repr(tag) for tag in tags)
    return ""
