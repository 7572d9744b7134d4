"""Benchmark page: run a puzzle suite with a simulator and one or more scorers; look at the puzzles they get wrong.

A puzzle has one true explanation and several false ones; a scorer passes it
when the true explanation scores above every false one. The run goes through
`scoring.bench.run_bench`, which with several scorers also compares their
rankings; the heatmaps of a failed puzzle come from `scoring.rank_explanations`
on the same cache, so they cost nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import streamlit as st

import dashboard as ui
from scoring import ScoringInputError, load_puzzles, rank_explanations, run_bench, viz

SOURCES = ("Bundled OpenAI puzzles", "Upload a puzzle file")



def puzzles_fingerprint(source: Any) -> str:
    """sha256 of the puzzle file's content (parsed JSON, or the bundled file's bytes)."""
    if source is None:
        return ""
    data = Path(source).read_bytes() if isinstance(source, Path) else json.dumps(source, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


ui.page_setup(
    "Benchmark",
    "🧩",
    state={
        "bench_source": SOURCES[0] if ui.BUNDLED_PUZZLES.exists() else SOURCES[1],
        "bench_report": None,
        "bench_puzzles": None,
        "bench_settings": {},
        "bench_limit": 0,
    },
)

st.title("Benchmark a simulator and scorers on puzzles")
st.caption(
    "Each puzzle has a true explanation and false ones. A simulator gets a puzzle right when the true "
    "explanation scores higher than every false one. Use it to compare simulators or to demo an improvement."
)
with st.expander("Puzzle file format"):
    st.markdown(
        "The schema of OpenAI's explanation puzzles: a JSON object keyed by puzzle name, each with "
        "`explanation`, `false_explanations` (list) and `sentences`: lists of tokens, where a token is a "
        "string (inactive) or `[token, activation]`."
    )

source = st.radio("Puzzles from", SOURCES, horizontal=True, key="bench_source")
puzzle_source: Any = None
source_name = ""
try:
    if source == SOURCES[0]:
        if ui.BUNDLED_PUZZLES.exists():
            puzzle_source, source_name = ui.BUNDLED_PUZZLES, "OpenAI puzzles (bundled)"
        else:
            st.error(f"The bundled puzzles are not at {ui.BUNDLED_PUZZLES}; upload a puzzle file instead.")
    else:
        upload = st.file_uploader("Puzzle file (JSON)", type=["json"], key="bench_upload")
        if upload is not None:
            try:
                puzzle_source = json.loads(upload.getvalue().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ScoringInputError(f"{upload.name} is not valid UTF-8 JSON ({exc})") from exc
            source_name = upload.name
        else:
            st.info("Upload a JSON puzzle file in the format described above.")
    puzzles = load_puzzles(puzzle_source) if puzzle_source is not None else None
    puzzles_sha256 = puzzles_fingerprint(puzzle_source)
except ScoringInputError as exc:
    st.error(f"Could not read the puzzles: {exc}")
    puzzles = None

if puzzles:
    sentences = sum(len(puzzle.records) for puzzle in puzzles)
    explanations = sum(1 + len(puzzle.false_explanations) for puzzle in puzzles)
    st.success(
        f"{source_name}: {viz.count(len(puzzles), 'puzzle')}, {viz.count(sentences, 'sentence')}, "
        f"{viz.count(explanations, 'explanation')} to score"
    )
    if not 0 <= int(st.session_state.get("bench_limit", 0)) <= len(puzzles):
        st.session_state["bench_limit"] = 0
    spec = ui.simulator_select("bench_simulator")
    with st.form("bench_form"):
        scorers = ui.scorer_multiselect("bench_scorers")
        limit = st.number_input(
            "Puzzles to run (0 = all)", min_value=0, max_value=len(puzzles), step=1, key="bench_limit"
        )
        use_cache = st.checkbox("Use the cache", value=True, key="bench_use_cache")
        st.session_state.setdefault("bench_time_limit", ui.DEFAULT_TIME_LIMIT_SECONDS)
        time_limit = st.number_input(
            "Time limit (seconds)",
            min_value=1,
            max_value=24 * 3600,
            step=60,
            key="bench_time_limit",
            help="A simulator that has not finished by then is given up on, and the page says so.",
        )
        submitted = st.form_submit_button("Run benchmark", type="primary")
    fingerprint = {"puzzles": puzzles_sha256, "simulator": spec, "scorers": list(scorers), "limit": int(limit)}
    if submitted and not scorers:
        st.error("Choose at least one scorer.")
    elif submitted and (simulator := ui.simulator_or_error(spec)) is not None:
        cache = ui.simulation_cache() if use_cache else False
        new_report = ui.run_with_progress_bar(
            f"Scoring {explanations} explanations with {spec}…",
            lambda progress: run_bench(
                puzzle_source,
                simulator=simulator,
                scorer=scorers,
                cache=cache,
                limit=int(limit) or None,
                progress=progress,
            ),
            action="run the benchmark",
            activity="The benchmark",
            time_limit=float(time_limit),
        )
        if new_report is not None:
            st.session_state["bench_report"] = new_report
            st.session_state["bench_puzzles"] = source_name
            st.session_state["bench_settings"] = {"simulator": spec, "scorers": scorers, "use_cache": use_cache}
            st.session_state["bench_fingerprint"] = fingerprint

report = st.session_state.get("bench_report")
if report and puzzles:
    scored = st.session_state.get("bench_fingerprint") or {}
    changed = [
        words
        for part, words in (("puzzles", "the puzzles"), ("simulator", "the simulator"), ("scorers", "the scorers"))
        if scored.get(part) != fingerprint.get(part)
    ]
    st.header("Results (stale)" if changed else "Results")
    ui.warn_if_stale(changed, str(st.session_state.get("bench_puzzles")), "Run benchmark")
    columns = st.columns(4)
    chance_accuracy = viz.format_number(report.get("chance_accuracy"), 3)
    columns[0].metric(
        "Accuracy",
        viz.format_number(report.get("accuracy"), 3),
        help=f"Puzzles won outright. Chance: {chance_accuracy} (a puzzle with k decoys is won by luck 1 time "
        "in k + 1)",
    )
    columns[1].metric(
        "Pairwise accuracy",
        viz.format_number(report.get("pairwise_accuracy"), 3),
        help="True-vs-false pairs won. Chance: 0.500 (a coin per pair)",
    )
    columns[2].metric("Seconds per score", viz.format_number(report.get("seconds_per_score"), 3))
    columns[3].metric("Prompt tokens per score", viz.format_number(report.get("prompt_tokens_per_score"), 0))
    cost = report.get("cost_usd")
    st.caption(
        f"**Chance**, for a scorer that ranks at random: accuracy {chance_accuracy} (1 / (decoys + 1), averaged "
        f"over the puzzles), pairwise accuracy {viz.format_number(report.get('chance_pairwise_accuracy'), 3)}."
    )
    st.caption(
        f"Simulator `{report.get('simulator')}` · scorer `{report.get('scorer')}` · "
        f"{report.get('n_puzzles')} puzzles · {report.get('n_scores')} scores · "
        f"{report.get('cache_hits', 0)} cached sequences · cost {'n/a' if cost is None else f'${cost:.4f}'}"
    )
    by_scorer: dict[str, Any] = report.get("scorers") or {str(report.get("scorer")): report}
    if len(by_scorer) > 1:
        st.subheader("Scorers")
        st.caption(
            "The figures above are the first scorer's. Rank agreement: Kendall's tau-b between two scorers' "
            "rankings of each puzzle's explanations, averaged over puzzles, and the share of puzzles where both "
            "put the same explanation on top."
        )
        st.dataframe(viz.bench_scorers_frame(report).map(viz.format_number), hide_index=True, key="bench_scorers")
        st.dataframe(
            viz.bench_agreement_frame(report).map(viz.format_number), hide_index=True, key="bench_agreement"
        )
    viewed = str(report.get("scorer"))
    if len(by_scorer) > 1:
        if st.session_state.get("bench_view_scorer") not in by_scorer:
            st.session_state.pop("bench_view_scorer", None)
        viewed = str(st.selectbox("Puzzles as judged by", list(by_scorer), key="bench_view_scorer"))
    table = viz.bench_frame(by_scorer[viewed])
    st.dataframe(viz.highlight_bench(table), hide_index=True, key="bench_table")
    st.download_button(
        "Report (JSON)",
        json.dumps(report, indent=2, default=lambda value: None if isinstance(value, float) else str(value)),
        "bench.json",
        "application/json",
        on_click="ignore",
        key="bench_download",
    )

    wrong = [str(key) for key, won in zip(table["puzzle"], table["won"], strict=True) if not won]
    st.header(f"Puzzles {viewed} gets wrong ({len(wrong)})")
    if not wrong:
        st.success("Every puzzle was won.")
    else:
        chosen = st.selectbox("Puzzle", wrong, key="bench_wrong_puzzle")
        puzzle = next(p for p in puzzles if p.key == chosen)
        settings = st.session_state.get("bench_settings", {})
        rescoring_simulator = ui.simulator_or_error(settings.get("simulator", spec))
        rescoring_cache = ui.simulation_cache() if settings.get("use_cache", True) else False
        results = None
        if rescoring_simulator is not None:
            results = ui.run_with_progress_bar(
                f"Re-scoring puzzle {chosen}…",
                lambda progress: rank_explanations(
                    [puzzle.explanation, *puzzle.false_explanations],
                    puzzle.records,
                    simulator=rescoring_simulator,
                    scorer=viewed,
                    cache=rescoring_cache,
                    progress=progress,
                ),
                action="show this puzzle",
                activity="Re-scoring this puzzle",
                time_limit=float(st.session_state.get("bench_time_limit", ui.DEFAULT_TIME_LIMIT_SECONDS)),
            )
        if results is not None:
            true_result = next(r for r in results if r.explanation == puzzle.explanation.strip())
            st.markdown(
                f"**True explanation:** {puzzle.explanation} — score "
                f"{viz.format_number(true_result.score)}"
                + ("" if math.isfinite(true_result.score) else f" ({true_result.error})")
            )
            ui.render_results(results, "bench", {**settings, "puzzle": chosen})
            ui.render_judgements({viewed: results}, "bench")
