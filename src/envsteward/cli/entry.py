"""The ``envsteward`` console script: a fast path for ``wal fetch`` of a prefetched segment, else the CLI.

PostgreSQL runs ``restore_command`` once per WAL segment. When the read-ahead of
:mod:`envsteward.pitr.prefetch` already holds the segment, ``wal fetch`` is one rename: this module
answers it before typer, pydantic, the catalog or the stores are imported (~0.03 s instead of ~0.4 s); the
same for a file the running prefetcher found absent a moment ago
(:func:`envsteward.pitr.prefetch.known_absent`: PostgreSQL's probes for ``.history`` files and for the
segment after the last one).
Anything else, including any argument this small parser does not recognise, goes to
:func:`envsteward.cli.main.main` unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

_FETCH_OPTIONS_WITH_VALUE = frozenset({"--target", "--from"})
_FETCH_FLAGS = frozenset({"-v", "--verbose"})


def _fetch_arguments(argv: list[str]) -> tuple[str, Path] | None:
    """``NAME PATH`` of ``wal fetch [options] NAME PATH``; None for anything unusual (the full CLI
    handles it)."""
    positional: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in _FETCH_OPTIONS_WITH_VALUE:
            if index + 1 >= len(argv):
                return None
            index += 2
            continue
        if arg.startswith(("--target=", "--from=")):
            index += 1
            continue
        if arg in _FETCH_FLAGS:
            index += 1
            continue
        if arg.startswith("-"):
            return None
        positional.append(arg)
        index += 1
    if len(positional) != 2:
        return None
    return positional[0], Path(positional[1])


def fetch_from_spool(argv: list[str]) -> tuple[str, int] | None:
    """``(name, exit code)`` when ``wal fetch`` (arguments ``argv``) was answered by the read-ahead: 0 when
    the segment was taken from the spool, 1 (absent) when the running prefetcher checked less than
    ``FRESH_SECONDS`` ago that the archive does not hold it. None: the full CLI must answer."""
    parsed = _fetch_arguments(argv)
    if parsed is None:
        return None
    from envsteward.pitr import prefetch

    name, destination = parsed
    if prefetch.window() == 0:
        return None
    code = prefetch.answer(name, destination)
    return None if code is None else (name, code)


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if argv[:2] == ["wal", "fetch"]:
        answered = fetch_from_spool(argv[2:])
        if answered is not None:
            name, code = answered
            if code == 0 and ("-v" in argv or "--verbose" in argv):
                sys.stderr.write(f"envsteward wal fetch: {name}: from the read-ahead\n")
            raise SystemExit(code)
    from envsteward.cli.main import main as full_main

    full_main()
