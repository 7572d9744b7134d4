"""Which files a piece of code opens, seen through Python's audit hooks (``open`` events).

Audit hooks cannot be removed, so one hook is installed on first use and reports only while
`watch_reads` runs. It sees every open in this process, from any thread (AppTest runs a page's
script in a thread of the test process).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_watched: list[tuple[str, list[str]]] = []
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _watched or not args:
        return
    target = args[0]
    if not isinstance(target, (str, bytes, os.PathLike)):
        return  # a file descriptor
    path = os.path.abspath(os.fsdecode(target))
    for folder, seen in list(_watched):
        if path == folder or path.startswith(folder + os.sep):
            seen.append(path)


@contextmanager
def watch_reads(folder: Path) -> Iterator[list[str]]:
    """Within the block, the list fills with every path under `folder` that this process opens."""
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
    seen: list[str] = []
    entry = (os.path.abspath(folder.resolve()), seen)
    _watched.append(entry)
    try:
        yield seen
    finally:
        _watched.remove(entry)
