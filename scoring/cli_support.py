"""What every command of the command line shares: its table row, option types and conventions.

The conventions, so that an option means one thing in every command:

* ``-n``/``--n-sequences``: how many sequences are scored (never a count of anything else);
* ``--cache``/``--no-cache`` and ``--cache-dir DIR``: the simulation cache, on by default
  except in ``bench``, whose timings would otherwise measure the cache;
* ``--json``: one JSON document on stdout instead of tables;
* ``--simulator SPEC``: leaving it out uses the default simulator (``scoring list`` says which);
* the global ``-v`` and ``--no-progress`` may stand anywhere on the line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from scoring.progress import progress_bar
from scoring.shared_types import Progress


@dataclass(frozen=True)
class Command:
    """One subcommand: the only place it is declared (`scoring.cli.COMMANDS` lists the rows)."""

    name: str
    summary: str
    """One line for the list of commands in ``--help``."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    """Returns the exit code; raises ScoringInputError for a mistake the user can fix (exit code 2)."""
    description: str = ""
    """More text for the command's own ``--help`` (default: the summary)."""


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse reports the error, exit code 2)."""
    return _whole_number(text, 1, "a positive whole number")


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return _whole_number(text, 0, "a whole number of at least 0")


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    value = _whole_number(text, 1, "a port number from 1 to 65535")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return value


def _whole_number(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def add_simulator_option(parser: argparse.ArgumentParser, judge: bool = False) -> None:
    """``--simulator SPEC``; with `judge`, for work that needs a simulator that judges or writes."""
    if judge:
        text = (
            "a simulator that judges and writes: local, openai:<model>, openai-compatible:<model>@<url> "
            "(default: the default judge, see `scoring list`)"
        )
    else:
        text = (
            "simulator spec: local, embedding, lexical, openai:<model>, openai-compatible:<model>@<url> "
            "(default: the default simulator, see `scoring list`)"
        )
    parser.add_argument("--simulator", metavar="SPEC", default=None, help=text)


def add_cache_options(parser: argparse.ArgumentParser, default_on: bool = True, why: str = "") -> None:
    """``--cache``/``--no-cache`` and ``--cache-dir DIR``, the same in every command that simulates."""
    state = "on" if default_on else "off"
    parser.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"reuse and store simulations in the on-disk cache (default: {state}{why})",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="cache folder (default: $SCORING_CACHE_DIR, else the user cache folder; `scoring cache dir`); "
        "giving it turns the cache on",
    )


def cache_option(args: argparse.Namespace, default_on: bool = True) -> Any:
    """The ``cache=`` argument of the API for the options of `add_cache_options`."""
    if args.cache is False:
        return False
    if args.cache_dir:
        return args.cache_dir
    return bool(args.cache or default_on)


def add_json_option(parser: argparse.ArgumentParser, what: str = "the results") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as one JSON document")


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with code 1 when any simulation or judgment failed (without it: only when all failed)",
    )


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr when it is a terminal, unless ``--no-progress`` was given."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


@contextmanager
def progress(args: argparse.Namespace, description: str, unit: str) -> Iterator[Progress | None]:
    """A ``progress(done, total, message)`` callback drawing a bar on stderr, or None when none is wanted."""
    if not progress_wanted(args):
        yield None
        return
    with progress_bar(description, unit) as report:
        yield report
