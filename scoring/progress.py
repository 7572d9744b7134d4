"""A progress bar on stderr for the command line, fed by the library's ``progress(done, total, message)`` callbacks."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def progress_bar(description: str, unit: str) -> Iterator[Callable[[int, int, str], None]]:
    """A ``progress(done, total, message)`` callback drawing a tqdm bar on stderr.

    The bar starts at the first call, so work that is skipped (an index already
    built) prints nothing; a call with another total resizes it.
    """
    from tqdm import tqdm

    bar: Any = None

    def report(done: int, total: int, _message: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True)
        if total != bar.total:  # work whose size is learnt as it goes (several explanations, several scorers)
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
