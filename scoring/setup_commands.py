"""The commands about the installation itself: ``list``, ``config`` and ``cache``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from scoring import userconfig
from scoring.cli_support import Command, add_json_option
from scoring.errors import MissingKeyError, ScoringInputError

# ---------------------------------------------------------------- list


def _add_list(parser: argparse.ArgumentParser) -> None:
    add_json_option(parser, "the listing")


_SOURCES = {
    "built-in": "the built-in choice",
    "environment": "set in the environment",
    "settings file": "set in the settings file",
}


def _command_list(args: argparse.Namespace) -> int:
    from scoring.catalog import catalog

    listing = catalog()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    simulators = listing["simulators"]
    width = max(len(entry["name"]) for entry in simulators)
    print("Simulators (--simulator SPEC)")
    for entry in simulators:
        can = [word for word, flag in (("judges", entry.get("judges")), ("writes", entry.get("writes"))) if flag]
        print(f"  {entry['name']:<{width}}  {entry['description']}")
        details = f"spec {entry['usage']}; " + (f"{' and '.join(can)}; " if can else "") + entry["state"]
        print(textwrap.fill(details, width=110, initial_indent=" " * (width + 4), subsequent_indent=" " * (width + 6)))
    print()
    for role, choice in listing["defaults"].items():
        print(f"Default {role} here: {choice['spec']} ({_SOURCES.get(choice['source'], choice['source'])})")
        print(textwrap.fill(choice["reason"], width=110, initial_indent="  ", subsequent_indent="  "))
    change = (
        "Change them with --simulator, the environment (SCORING_SIMULATOR, SCORING_JUDGE) or the settings file "
        f"{listing['settings_file']} (scoring config set simulator SPEC)."
    )
    print(textwrap.fill(change, width=110))
    print()
    _print_named(
        "Scorers (--scorer NAME)",
        [
            (entry["name"], entry["summary"] + (" [needs a simulator that judges]" if entry["needs_judge"] else ""))
            for entry in listing["scorers"]
        ],
    )
    print()
    _print_named(
        "Packaged models (shipped by PyPI packages; local:model=KEY)",
        [(entry["key"], f"{entry['model_id']} ({_model_state(entry)})") for entry in listing["models"]],
    )
    return 0


def _model_state(entry: dict[str, Any]) -> str:
    state = "installed" if entry["installed"] else "not installed"
    return state + (", converted" if entry["converted"] else (", not converted yet" if entry["installed"] else ""))


def _print_named(title: str, rows: list[tuple[str, str]]) -> None:
    """`title`, then one line per (name, text), the names in a column and long texts folded under the text."""
    width = max(len(name) for name, _ in rows)
    print(title)
    for name, text in rows:
        print(textwrap.fill(
            f"{name:<{width}}  {text}", width=110, initial_indent="  ", subsequent_indent=" " * (width + 4)
        ))


# ---------------------------------------------------------------- config

CONFIG_ACTIONS = ("list", "get", "set", "unset", "path")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=CONFIG_ACTIONS,
        help="list the settings (default), get KEY, set KEY VALUE, unset KEY, or print the file's path",
    )
    parser.add_argument("key", nargs="?", help=f"a setting: {', '.join(userconfig.SETTINGS)}")
    parser.add_argument("value", nargs="?", help="the value to set (a simulator spec)")


def _command_config(args: argparse.Namespace) -> int:
    if args.action == "path":
        print(userconfig.config_path())
        return 0
    if args.action == "list":
        if args.key:
            raise ScoringInputError("config list takes no key; use: scoring config get KEY")
        for key, what in userconfig.SETTINGS.items():
            found = userconfig.configured(key)
            shown = f"{found[0]}  (from {found[1]})" if found else "(not set: the built-in default)"
            print(f"{key} = {shown}")
            print(f"    {what}")
        return 0
    if args.key not in userconfig.SETTINGS:
        raise ScoringInputError(
            f"config {args.action} needs a key: {', '.join(userconfig.SETTINGS)} (got {args.key!r})"
        )
    settings = userconfig.read_settings()
    if args.action == "get":
        found = userconfig.configured(args.key)
        if found is None:
            return 1
        print(found[0])
        return 0
    if args.action == "unset":
        settings.pop(args.key, None)
        path = userconfig.write_settings(settings)
        print(f"{args.key} unset in {path}")
        return 0
    if not args.value or not args.value.strip():
        raise ScoringInputError(f"config set {args.key} needs a value, e.g. scoring config set {args.key} lexical")
    _check_spec(args.value.strip())
    settings[args.key] = args.value.strip()
    path = userconfig.write_settings(settings)
    print(f"{args.key} = {args.value.strip()}  (written to {path})")
    overriding = userconfig.SETTING_VARIABLES[args.key]
    found = userconfig.configured(args.key)
    if found is not None and found[0] != args.value.strip():
        print(f"note: {overriding} is set in this environment and wins over the file")
    return 0


def _check_spec(spec: str) -> None:
    """A spec that names no simulator or has bad options is refused; a key that is not set yet is a note."""
    from scoring.simulators import get_simulator

    try:
        get_simulator(spec)
    except MissingKeyError as exc:
        print(f"note: {exc}", file=sys.stderr)


# ---------------------------------------------------------------- cache

CACHE_ACTIONS = ("info", "dir", "clear")


def _add_cache(parser: argparse.ArgumentParser) -> None:
    from scoring.storage import KINDS

    parser.add_argument(
        "action",
        nargs="?",
        default="info",
        choices=CACHE_ACTIONS,
        help="info: where each kind lives and its size (default); dir: the folders; clear KIND...: remove",
    )
    parser.add_argument(
        "kinds",
        nargs="*",
        metavar="KIND",
        help=f"for clear: {', '.join(KINDS)} or all; for dir: which folder (default: all)",
    )
    parser.add_argument(
        "--item",
        action="append",
        default=[],
        metavar="NAME",
        help="clear only these converted models or subject indexes (a folder name or its start, e.g. gemma-3-270m)",
    )
    add_json_option(parser, "the report")


_UNITS = {"simulations": "entries", "subjects": "indexes", "models": "models"}


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _command_cache(args: argparse.Namespace) -> int:
    from scoring.storage import KINDS, cache_folders, clear

    kinds = list(KINDS) if "all" in args.kinds else list(dict.fromkeys(args.kinds))
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ScoringInputError(f"unknown cache kind {', '.join(unknown)}; choose from: {', '.join(KINDS)}, all")
    if args.action == "clear":
        if not kinds:
            raise ScoringInputError(f"name what to clear: {', '.join(KINDS)} or all (scoring cache clear models)")
        if args.item and len(kinds) != 1:
            raise ScoringInputError("--item needs exactly one kind: models or subjects")
        removed: dict[str, list[str]] = {kind: clear(kind, args.item) for kind in kinds}
        if args.json:
            print(json.dumps({"removed": removed}, indent=2))
        for kind, items in removed.items():
            if not args.json:
                print(f"{kind}: removed {', '.join(items)}" if items else f"{kind}: nothing to remove")
        return 0
    folders = [folder for folder in cache_folders() if not kinds or folder.kind in kinds]
    if args.action == "dir":
        for folder in folders:
            print(folder.path if len(folders) == 1 else f"{folder.kind}\t{folder.path}")
        return 0
    if args.json:
        report: list[dict[str, Any]] = [
            {
                "kind": folder.kind,
                "what": folder.what,
                "entries": folder.entries,
                "path": str(folder.path),
                "variable": folder.variable,
                "bytes": folder.bytes,
                "parts": [{"name": name, "bytes": size} for name, size in folder.parts],
            }
            for folder in folders
        ]
        print(json.dumps({"cache": report, "total_bytes": sum(folder.bytes for folder in folders)}, indent=2))
        return 0
    for folder in folders:
        print(f"{folder.kind:<12} {_size(folder.bytes):>9}  {folder.entries:>5} {_UNITS[folder.kind]:<9} {folder.what}")
        print(f"{'':<12} {'':>9}  {folder.path} (${folder.variable})")
        for name, size in folder.parts:
            print(f"{'':<12} {_size(size):>9}    {name}")
    print(f"{'total':<12} {_size(sum(folder.bytes for folder in folders)):>9}")
    print("scoring cache clear KIND removes one kind (simulations, subjects, models, all); all are made again on use")
    return 0


COMMANDS = (
    Command(
        "list",
        "simulators, scorers, models; the default here and why",
        _add_list,
        _command_list,
    ),
    Command(
        "config",
        "show or set your default simulator and judge",
        _add_config,
        _command_config,
        description=(
            "Show or set your defaults in the settings file (`scoring config path`).\n\n"
            "  scoring config                       list the settings and where each comes from\n"
            "  scoring config set simulator SPEC    the simulator used when --simulator is not given\n"
            "  scoring config set judge SPEC        the same for judge scorers, attention and explain\n"
            "  scoring config unset simulator       back to the built-in default\n\n"
            "The environment variables SCORING_SIMULATOR and SCORING_JUDGE win over the file."
        ),
    ),
    Command(
        "cache",
        "the cache folders and their sizes; clear them",
        _add_cache,
        _command_cache,
        description=(
            "Where the caches and converted models are, their sizes, and clearing them.\n\n"
            "  scoring cache                        each kind's folder and size (simulations, subjects, models)\n"
            "  scoring cache dir [KIND]             the folders\n"
            "  scoring cache clear models           remove the converted models (converted again on use)\n"
            "  scoring cache clear all              remove everything cached\n"
        ),
    ),
)
"""The setup rows of `scoring.cli.COMMANDS`."""
