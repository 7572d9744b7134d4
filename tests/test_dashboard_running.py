"""The dashboard's worker: work runs in a thread that never calls Streamlit; the page's thread draws its progress.

Streamlit's commands are safe in the page's own thread only (its multithreading
guide), so `dashboard.running._within` needs no private Streamlit API
(``add_script_run_ctx``): the worker queues its progress reports and the thread
that waits for it passes them on (issue 27, item 6).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from dashboard import running
from scoring import Progress
from scoring.errors import ScoringInputError

ROOT = Path(__file__).resolve().parent.parent

Report = Progress


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


def test_work_without_a_time_limit_runs_to_its_end() -> None:
    assert running._within(math.inf, lambda progress: "indexed", lambda *report: None) == "indexed"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_says_the_time_left_at_the_rate_so_far() -> None:
    clock = Clock()
    text = running.ProgressText(clock)
    assert text(10, 50, "10 of 50 sequences from the cache") == "10 of 50 sequences from the cache"
    clock.now += 2
    assert text(14, 50, "simulated 4 of 50") == "simulated 4 of 50"  # too soon to tell
    clock.now += 2  # 10 done in 4 s since the first report (the cached 10 do not count): 30 left take 12 s
    assert text(20, 50, "simulated 10 of 50") == "simulated 10 of 50 · about 12 s left"
    clock.now += 596
    assert text(40, 50, "simulated 30 of 50") == "simulated 30 of 50 · about 3 min left"
    assert text(50, 50, "simulated 40 of 50") == "simulated 40 of 50"  # finished: nothing left to estimate


def test_a_new_stage_measures_its_own_rate() -> None:
    clock = Clock()
    text = running.ProgressText(clock)
    text(0, 10, "joining the pieces")
    clock.now += 10
    assert text(5, 10, "joining the pieces").endswith("about 10 s left")
    assert text(0, 4, "converting") == "converting"  # another total: a new stage
    clock.now += 5
    assert text(1, 4, "converting").endswith("about 15 s left")
    text(2, 4, "converting")
    assert text(1, 4, "loading") == "loading"  # the count went back: a new stage
    clock.now += 4000
    assert text(2, 4, "loading").endswith("about 2.2 h left")


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
