"""The progress bar of the command line and the batch runner: one tqdm bar on stderr.

It is fed either by the library's ``progress(done, total, message)`` callbacks (`ProgressBar.report`, the
`scoring.shared_types.Progress` type) or counted step by step by its owner (`ProgressBar.advance`). The
dashboard draws its own bar in Streamlit (`dashboard.running.run_with_progress_bar`) from the same callbacks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from scoring.shared_types import Progress


class ProgressBar:
    """A tqdm bar on stderr showing done/total, rate and time left; opened at the first report.

    ``total``: the size when known at the start (the bar shows at once); None waits for the first `report`, so
    work that turns out to be done already (an index already built) prints nothing. ``enabled`` False draws
    nothing while still counting (``done`` and ``total`` stay true, for a summary or a test).
    """

    def __init__(self, description: str, unit: str = "it", *, total: int | None = None, enabled: bool = True) -> None:
        self.description = description
        self.unit = unit
        self.enabled = enabled
        self.done = 0
        self.total = total
        self._bar: Any = None
        if total is not None:
            self._open()

    def _open(self) -> None:
        if not self.enabled or self._bar is not None:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.total,
            initial=self.done,
            desc=self.description,
            unit=self.unit,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def report(self, done: int, total: int, message: str = "") -> None:
        """The `Progress` callback: `done` of `total`; another total resizes the bar (work whose size is learnt
        as it goes: several explanations, several scorers)."""
        self.total = total
        self._open()
        if self._bar is not None and total != self._bar.total:
            self._bar.total = total
        self._move(done)

    def advance(self, count: int = 1, **postfix: Any) -> None:
        """`count` more done; `postfix` (e.g. ``failed=2``) is shown after the bar."""
        self._open()
        self._move(self.done + count)
        if self._bar is not None and postfix:
            self._bar.set_postfix(**postfix, refresh=False)

    def drop(self, count: int = 1) -> None:
        """`count` fewer to do: work this run will not do after all (done by an earlier run, a repeat), so the
        rate counts only what this run does."""
        if self.total is not None:
            self.total -= count
        if self._bar is not None:
            self._bar.total -= count
            self._bar.refresh()

    def note(self, text: str) -> None:
        """`text` shown after the bar (e.g. the current epoch's loss)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def restart(self, description: str, unit: str) -> None:
        """Close this bar; the next report opens one for the next stage of the work (e.g. capture, then train)."""
        self.close()
        self.description, self.unit, self.done, self.total = description, unit, 0, None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _move(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        self.done = done

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def progress_bar(description: str, unit: str) -> Iterator[Progress]:
    """A ``progress(done, total, message)`` callback drawing a `ProgressBar` on stderr, closed at the end.

    The bar starts at the first call, so work that is skipped (an index already built) prints nothing.
    """
    with ProgressBar(description, unit) as bar:
        yield bar.report
