"""The dashboard's worker: work runs in a thread that never calls Streamlit; the page's thread draws its progress.

Streamlit's commands are safe in the page's own thread only (its multithreading
guide), so `dashboard.running._within` needs no private Streamlit API
(``add_script_run_ctx``): the worker queues its progress reports and the thread
that waits for it passes them on (issue 27, item 6).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dashboard import running
from scoring.errors import ScoringInputError

ROOT = Path(__file__).resolve().parent.parent

Report = Callable[[int, int, str], None]


def test_progress_is_shown_in_the_waiting_thread_and_the_result_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running, "PROGRESS_INTERVAL_SECONDS", 0.01)
    shown: list[tuple[int, int, str, str]] = []
    worker_threads: list[str] = []

    def work(progress: Report) -> str:
        worker_threads.append(threading.current_thread().name)
        for step in range(1, 4):
            progress(step, 3, f"step {step}")
            time.sleep(0.05)
        return "done"

    result = running._within(
        10, work, lambda done, total, text: shown.append((done, total, text, threading.current_thread().name))
    )
    assert result == "done"
    assert worker_threads == ["dashboard-work"]
    assert shown, "no progress was shown"
    assert {thread for *_, thread in shown} == {threading.current_thread().name}
    assert shown[-1][:3] == (3, 3, "step 3")
    assert [done for done, *_ in shown] == sorted(done for done, *_ in shown)


def test_a_stalled_worker_is_given_up_after_the_time_limit() -> None:
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError, match="no result within 0.2 s"):
            running._within(0.2, lambda progress: release.wait(30), lambda *report: None)
    finally:
        release.set()


def test_the_worker_s_error_is_raised_in_the_waiting_thread() -> None:
    def work(progress: Report) -> None:
        raise ScoringInputError("the records are empty")

    with pytest.raises(ScoringInputError, match="the records are empty"):
        running._within(10, work, lambda *report: None)


def test_the_dashboard_uses_no_private_streamlit_module() -> None:
    """Only Streamlit's public API (``streamlit``, ``streamlit.errors``, ``streamlit.testing``)."""
    sources = [ROOT / "app.py", *sorted((ROOT / "dashboard").rglob("*.py")), *sorted((ROOT / "pages").glob("*.py"))]
    private = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in sources
        for line in path.read_text(encoding="utf-8").splitlines()
        if "streamlit.runtime" in line or "streamlit.web" in line or "add_script_run_ctx" in line
    ]
    assert not private, private
