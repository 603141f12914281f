"""Catalog problems: every mistake in a catalog, each with its file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envsteward.errors import ConfigurationError


@dataclass(frozen=True)
class CatalogProblem:
    """One mistake in a catalog.

    * ``file``: the catalog folder's name joined with the file's path inside it
      (``catalog/environments.yaml``);
    * ``line``: 1-based, None when the problem has no single line;
    * ``field``: the path of the field inside the file (``environments[1].tier``), or None.
    """

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file, self.line or 0, self.field or "", self.message)


class CatalogError(ConfigurationError):
    """The catalog is invalid. ``problems`` lists every mistake found (not just the first)."""

    def __init__(self, problems: Iterable[CatalogProblem], summary: str | None = None) -> None:
        self.problems: list[CatalogProblem] = sorted(problems, key=CatalogProblem.sort_key)
        count = len(self.problems)
        head = summary or f"the catalog has {count} problem{'s' if count != 1 else ''}"
        if summary and (count == 0 or (count == 1 and self.problems[0].message == summary)):
            super().__init__(summary)
        else:
            super().__init__("\n".join([f"{head}:", *(f"  {problem}" for problem in self.problems)]))


class ProblemSink:
    """Collects problems while a catalog loads, so that all of them are reported at once."""

    def __init__(self) -> None:
        self.problems: list[CatalogProblem] = []

    def add(self, file: str, line: int | None, field: str | None, message: str) -> None:
        problem = CatalogProblem(file, line, field or None, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def __len__(self) -> int:
        return len(self.problems)
