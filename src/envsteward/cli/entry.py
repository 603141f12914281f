"""The ``envsteward`` console script: fast paths for ``wal fetch`` and ``wal push``, else the CLI.

PostgreSQL runs ``restore_command`` once per WAL segment. When the read-ahead of
:mod:`envsteward.pitr.prefetch` already holds the segment, ``wal fetch`` is one rename: this module
answers it before typer, pydantic, the catalog or the stores are imported (~0.03 s instead of ~0.4 s); the
same for a file the running prefetcher found absent a moment ago
(:func:`envsteward.pitr.prefetch.known_absent`: PostgreSQL's probes for ``.history`` files and for the
segment after the last one).
``wal push`` of a segment the archive-ahead pusher (:mod:`envsteward.pitr.push_ahead`) stored is answered
the same way: exit 0 only when its ``.ok`` names this ``--target``, the configuration stamp of this
process (the catalog, ``.env`` and ``ENVSTEWARD_*`` settings: :func:`envsteward.pitr.push_ahead.config_stamp`)
and the identity or the size and SHA-256 of the file PostgreSQL passed. Never exit 1 from here: a
segment the pusher failed to push is pushed by the full CLI itself.
Anything else, including any argument this small parser does not recognise, goes to
:func:`envsteward.cli.main.main` unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

_FLAGS = frozenset({"-v", "--verbose"})
_FETCH_OPTIONS = frozenset({"--target", "--from"})
_PUSH_OPTIONS = frozenset({"--target"})


def _split_arguments(argv: list[str], options: frozenset[str]) -> tuple[dict[str, str], list[str]] | None:
    """``(options given, positional arguments)`` of ``argv``, where ``options`` take a value (``--o V`` or
    ``--o=V``) and ``-v``/``--verbose`` are the only flags; None for anything else (an unknown option, an
    option without its value): the full CLI handles it."""
    given: dict[str, str] = {}
    positional: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, equals, value = arg.partition("=")
        if arg in options:
            if index + 1 >= len(argv):
                return None
            given[arg] = argv[index + 1]
            index += 2
        elif equals and name in options:
            given[name] = value
            index += 1
        elif arg in _FLAGS:
            index += 1
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
            index += 1
    return given, positional


def _fetch_arguments(argv: list[str]) -> tuple[str, Path] | None:
    """``NAME PATH`` of ``wal fetch [options] NAME PATH``; None for anything unusual (the full CLI
    handles it)."""
    split = _split_arguments(argv, _FETCH_OPTIONS)
    if split is None or len(split[1]) != 2:
        return None
    name, path = split[1]
    return name, Path(path)


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


def _push_arguments(argv: list[str]) -> tuple[str, Path] | None:
    """``(TARGET, PATH)`` of ``wal push --target TARGET [-v] PATH``; None for anything else (``--name``,
    unknown options: the full CLI handles it)."""
    split = _split_arguments(argv, _PUSH_OPTIONS)
    if split is None or "--target" not in split[0] or len(split[1]) != 1:
        return None
    return split[0]["--target"], Path(split[1][0])


def push_from_spool(argv: list[str]) -> tuple[int, str] | None:
    """``(exit code, line)`` when ``wal push`` (arguments ``argv``) was answered by the archive-ahead
    (:func:`envsteward.pitr.push_ahead.answer`); None: the full CLI must push."""
    parsed = _push_arguments(argv)
    if parsed is None:
        return None
    from envsteward.pitr import push_ahead

    if push_ahead.disabled_by_environment():
        return None
    target, path = parsed
    return push_ahead.answer(path.name, path, target, push_ahead.config_stamp())


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
    if argv[:2] == ["wal", "push"]:
        pushed = push_from_spool(argv[2:])
        if pushed is not None:
            code, line = pushed
            if code != 0:
                sys.stderr.write(f"envsteward wal push: error: {line}\n")
            elif "-v" in argv or "--verbose" in argv:
                sys.stderr.write(f"envsteward wal push: {line}\n")
            raise SystemExit(code)
    from envsteward.cli.main import main as full_main

    full_main()
