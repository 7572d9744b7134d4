"""Running scorers and explainers under a progress bar and a time limit; failures become page errors."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st

from dashboard.inputs import input_limits
from dashboard.sidebar import DEFAULT_TIME_LIMIT_SECONDS, FIRST_USE_NOTE_STATE, load_simulator, simulation_cache
from scoring import (
    ActivationRecord,
    GeneratedExplanation,
    Progress,
    ScoreResult,
    ScoringInputError,
    Simulator,
    generate_explanations,
    preparation_needed,
    prepare_simulator,
    rank_with_scorers,
    viz,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


def simulator_or_error(spec: str) -> Simulator | None:
    """The simulator for `spec`, or None after telling the user why it cannot be loaded."""
    try:
        return load_simulator(spec)
    except ScoringInputError as exc:
        st.error(f"Simulator {spec!r}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the page must stay up; the log keeps the traceback
        logger.exception("could not build simulator %s", spec)
        st.error(
            f"The simulator {spec!r} could not be loaded ({type(exc).__name__}: {exc}). "
            "Pick another simulator, or install what it needs."
        )
    return None


PREPARATION_TIME_LIMIT_SECONDS = 3600
"""How long a simulator's first-use preparation (converting, loading a model) may take before the page gives up."""


def prepare_for_first_use(spec: str, simulator: Simulator) -> bool:
    """Before the first score: a simulator that must prepare (convert, load a model) does it now, as its own
    step under its own progress bar; False when it cannot (the reason is shown)."""
    try:
        needed = preparation_needed(simulator)
    except Exception as exc:  # noqa: BLE001 - the page must stay up; the log keeps the traceback
        logger.exception("could not ask %s whether it needs preparing", spec)
        st.error(f"The simulator {spec!r} could not say whether it is ready ({type(exc).__name__}: {exc}).")
        return False
    if needed is None:
        return True
    note = st.info(f"First use of `{spec}`: it {needed}. This happens once; later scores start at once.", icon="⏳")

    def prepare(progress: Progress) -> bool:
        def report(stage: str, done: int, total: int) -> None:
            progress(done, total, f"Preparing {spec}: {stage} ({done:,} of {total:,})")

        prepare_simulator(simulator, report)
        return True

    prepared = run_with_progress_bar(
        f"Preparing {spec} for first use…",
        prepare,
        action=f"prepare {spec}",
        activity=f"Preparing {spec}",
        time_limit=PREPARATION_TIME_LIMIT_SECONDS,
    )
    if prepared:
        note.empty()
        announced = st.session_state.pop(FIRST_USE_NOTE_STATE, None)
        if announced is not None:
            announced.empty()
    return bool(prepared)


def _run_with_simulator(
    spec: str, text: str, work: Callable[[Simulator, Progress], T], **options: Any
) -> T | None:
    """`work(simulator, progress)` under `run_with_progress_bar` (`options` go there), after the simulator's
    first-use preparation (`prepare_for_first_use`); None when the simulator cannot be loaded or prepared, or
    the work fails (the reason is shown)."""
    simulator = simulator_or_error(spec)
    if simulator is None or not prepare_for_first_use(spec, simulator):
        return None
    return run_with_progress_bar(text, lambda progress: work(simulator, progress), **options)


def run_scorers(
    explanations: Sequence[str], records: Sequence[ActivationRecord], settings: dict[str, Any]
) -> dict[str, list[ScoreResult]] | None:
    """Rank with every chosen scorer via `scoring.rank_with_scorers`, with a progress bar; None after an error.

    The chance level (`scoring.null_scores`) is scored in the same pass when ``settings["chance_level"]`` is
    true, or, when it is not set, when the simulator is cheap (`Capabilities.cheap`); with a slow simulator
    the results offer it on demand.
    """
    if not explanations:
        st.error("Enter at least one explanation (one per line) before scoring.")
        return None
    scorers = list(settings.get("scorers") or [settings["scorer"]])
    if not scorers:
        st.error("Choose at least one scorer.")
        return None
    spec = settings["simulator"]
    cache = simulation_cache() if settings["use_cache"] else False
    limits = settings.get("limits") or input_limits()

    def work(simulator: Simulator, progress: Progress) -> dict[str, list[ScoreResult]]:
        chance_level = settings.get("chance_level")
        if chance_level is None:
            chance_level = simulator.capabilities.cheap
        return rank_with_scorers(
            list(explanations),
            list(records),
            scorers,
            simulator=simulator,
            sampling=settings["sampling"],
            n_sequences=settings["n_sequences"],
            normalization=settings["normalization"],
            cache=cache,
            progress=progress,
            limits=limits,
            null=True if chance_level else None,
        )

    return _run_with_simulator(
        spec,
        f"Scoring {viz.count(len(explanations), 'explanation')} with {spec}…",
        work,
        action="score",
        activity="Scoring",
        time_limit=float(settings.get("time_limit") or DEFAULT_TIME_LIMIT_SECONDS),
    )


def run_ranking(
    explanations: Sequence[str], records: Sequence[ActivationRecord], settings: dict[str, Any]
) -> list[ScoreResult] | None:
    """Rank with the one scorer of `settings` (see `run_scorers`); on failure show why, return None."""
    ranked = run_scorers(explanations, records, {**settings, "scorers": [settings["scorer"]]})
    return None if ranked is None else ranked[settings["scorer"]]


GENERATE_HELP = (
    "The chosen simulator reads the records where the neuron fires most and writes candidate explanations; "
    "they are added to the list below, marked as generated in the ranking. The first candidate is the "
    "model's first choice, the others are sampled (seeded, so the same each time). Type into the list "
    "after generating: text typed but not yet scored is replaced when the list is updated."
)


def generate_candidates(
    records: Sequence[ActivationRecord], spec: str, n: int, use_cache: bool = True
) -> list[GeneratedExplanation] | None:
    """Candidates from `scoring.generate_explanations` with a progress bar; None after an error (shown)."""
    cache = simulation_cache() if use_cache else False
    return _run_with_simulator(
        spec,
        f"Writing {n} candidate explanations with {spec}…",
        lambda simulator, progress: generate_explanations(
            list(records),
            simulator=simulator,
            n=n,
            cache=cache,
            progress=progress,
        ),
        action="generate explanations",
        activity="Generating explanations",
    )


def show_generated(generated: Sequence[GeneratedExplanation], added: Sequence[str], key: str) -> None:
    """What the last generation wrote: what was added, what failed and why, and every attempt in a table."""
    if added:
        st.success(f"Added {len(added)} generated explanation(s): " + "; ".join(added))
    elif any(candidate.ok for candidate in generated):
        st.info("The generated explanations are already in the list.")
    failed = [candidate for candidate in generated if not candidate.ok]
    for candidate in failed:
        st.warning(f"Candidate {candidate.attempt + 1} could not be written: {candidate.error}")
    with st.expander(f"Generated candidates ({len(generated)})"):
        st.dataframe(viz.generated_frame(generated), hide_index=True, key=key)


def run_with_progress_bar(
    text: str,
    work: Callable[[Progress], T],
    *,
    action: str,
    activity: str,
    time_limit: float | None = DEFAULT_TIME_LIMIT_SECONDS,
) -> T | None:
    """`work(progress)` under the dashboard's progress bar, given up after `time_limit` seconds (None: never);
    None after an error, shown. Every page draws its progress with this one bar.

    `work` runs in a worker thread and must not call Streamlit (read widgets, session state and cached
    resources before, in the page): Streamlit's commands belong to the page's own thread, which draws the
    progress that `work` reports: its message, and the time left at the rate so far (`ProgressText`).
    Bad input reads "Cannot <action>: ..."; a stall reads "<activity> stopped";
    anything else is logged with its traceback and reads "<activity> failed (...)".
    """
    bar = st.progress(0.0, text=text)
    wording = ProgressText()
    try:
        result = _within(
            math.inf if time_limit is None else time_limit,
            work,
            lambda done, total, message: _show_progress(bar, done, total, wording(done, total, message)),
        )
    except TimeoutError:
        bar.empty()
        logger.warning("%s gave no result within %s s", activity, time_limit)
        st.error(
            f"{activity} stopped: no result within {time_limit:g} s (the time limit), so the simulator is stalled "
            "or too slow for this much text. Pick another simulator, score fewer sequences, or raise "
            "“Time limit (seconds)” in the settings."
        )
        return None
    except ScoringInputError as exc:
        bar.empty()
        st.error(f"Cannot {action}: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001
        bar.empty()
        logger.exception("%s failed", activity.lower())
        st.error(f"{activity} failed ({type(exc).__name__}: {exc}). The server log has the details.")
        return None
    bar.progress(1.0, text="Done")
    return result


PROGRESS_INTERVAL_SECONDS = 0.2
"""How often the page's thread draws the progress the worker reported."""


def _within(seconds: float, work: Callable[[Progress], T], show: Progress) -> T:
    """`work(progress)` in a worker thread; TimeoutError when it has not finished after `seconds`.

    The worker never touches Streamlit (which is safe in the page's thread only, as
    Streamlit's multithreading guide says): its progress reports go into a queue, and
    this thread passes the latest one to `show` every `PROGRESS_INTERVAL_SECONDS`
    while it waits. A stalled simulator cannot be interrupted from outside, so its
    thread is left behind (a daemon, holding no page state) and the page carries on.
    """
    outcome: dict[str, Any] = {}
    reports: queue.SimpleQueue[tuple[int, int, str]] = queue.SimpleQueue()

    def target() -> None:
        try:
            outcome["value"] = work(lambda done, total, message: reports.put((done, total, message)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the page's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="dashboard-work", daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while True:
        thread.join(max(0.0, min(PROGRESS_INTERVAL_SECONDS, deadline - time.monotonic())))
        latest = None
        while not reports.empty():
            latest = reports.get()
        if latest is not None:
            show(*latest)
        if not thread.is_alive():
            break
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no result within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


TIME_LEFT_AFTER_SECONDS = 3.0
"""How long work runs before the bar says how much time is left (a rate measured sooner is noise)."""


class ProgressText:
    """What the dashboard's bar says: the worker's message and, once the work has run `TIME_LEFT_AFTER_SECONDS`,
    the time left at the rate so far.

    The rate is measured from the first report of a stage, so work read from the cache at the start does not
    make it look fast; a stage starts again when the total changes or the count goes back (a simulator's
    preparation reports stage after stage).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start: tuple[float, int, int] | None = None
        """(time, done, total) of the stage's first report."""
        self.last_done = 0

    def __call__(self, done: int, total: int, message: str) -> str:
        now = self.clock()
        if self.start is None or total != self.start[2] or done < self.last_done:
            self.start = (now, done, total)
        self.last_done = done
        started, done_then, _ = self.start
        elapsed = now - started
        if elapsed < TIME_LEFT_AFTER_SECONDS or not done_then < done < total:
            return message
        left = elapsed / (done - done_then) * (total - done)
        return f"{message} · about {_duration(left)} left"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _show_progress(bar: Any, done: int, total: int, message: str) -> None:
    fraction = min(1.0, done / total) if total else 0.0
    try:
        bar.progress(fraction, text=message)
    except Exception:  # noqa: BLE001 - progress must never break scoring
        logger.debug("progress update failed", exc_info=True)
