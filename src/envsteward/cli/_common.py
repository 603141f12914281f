"""Helpers shared by the CLI subcommands. Keep this module light: ``envsteward --help`` imports it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from envsteward.services import Services
    from envsteward.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_ERROR = 1


@functools.cache
def console() -> Console:
    """stdout. Emoji codes are off (``file.yaml:100:`` must not print as 💯); markup is on for the CLI's own
    text, so anything that came from outside (names, paths, messages) goes through ``rich.markup.escape``."""
    from rich.console import Console

    return Console(emoji=False)


@functools.cache
def err_console() -> Console:
    """stderr, for errors: no emoji codes, and :func:`fail` prints messages as plain text."""
    from rich.console import Console

    return Console(stderr=True, emoji=False)


def load_settings() -> Settings:
    from envsteward.settings import Settings

    return Settings()


def services_for(catalog: Path | None = None) -> Services:
    """The services of this command: the settings, with ``--catalog`` (when given) as the catalog folder."""
    from envsteward.services import Services

    settings = load_settings()
    if catalog is not None:
        settings = settings.model_copy(update={"catalog": catalog})
    return Services(settings)


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print ``message`` to stderr, as plain text (no markup, no emoji), and exit with ``code`` (no
    traceback)."""
    from rich.text import Text

    err_console().print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    sys.exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn envsteward errors into one clear line on stderr and exit code 1, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from envsteward.errors import EnvstewardError

        try:
            return func(*args, **kwargs)
        except EnvstewardError as exc:
            fail(str(exc))
            raise AssertionError("unreachable") from exc

    return wrapper
