"""Drawing results: ranking, heatmaps, per-sequence correlation, scatter, judgements and downloads."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from scoring import (
    ACTIVE_THRESHOLD,
    JUDGE_SCORERS,
    ScoreResult,
    null_from_metrics,
    results_csv,
    results_json,
    tokens_csv,
    usage_summary,
    viz,
)

logger = logging.getLogger(__name__)

ABOUT_SCORE = """
**How the score is computed.** A *simulator* reads only the explanation and predicts, for every token,
how strongly the neuron should fire (0..10). The score is the **Pearson correlation** between the
simulated and the real activations over all tokens of the chosen sequences: 1 means the explanation
predicts the activations perfectly (up to scale), 0 means no linear relation, negative means it points
at the wrong tokens. This is the scoring method of OpenAI's *Language models can explain neurons in
language models* and of Neuronpedia's scorer.

- **Interval**: a 95% bootstrap interval over sequences. Two explanations whose intervals overlap
  widely are not reliably different on these sequences; add sequences to separate them.
- **r² (no fit)**: 1 − Σ(real − simulated)² / Σ(real − mean real)² on the 0..10 scale, with the
  simulation taken as it is (no rescaling): 1 is a perfect match, and it is negative when the simulation is
  further from the real values than a flat line at their mean would be. (After the best linear fit the
  share of variance explained would be the score squared.)
  **ROC-AUC**: how well the simulation separates active (> 0) from inactive tokens;
  **Spearman**: rank correlation; **mean seq. corr.**: the average of the per-sequence correlations.
- **n/a** means undefined, never zero: for example when the simulator predicts the same value for
  every token (the explanation matched nothing) or when a simulation failed. Hover the table or the
  per-sequence heatmap to see why. In the per-sequence heatmap a sequence where the neuron fires but
  the simulation stays flat is marked **missed**: that is where the explanation fails.
- **Normalization**: see the help next to the selector; the one used is shown with the results.
- Scores depend on the simulator: a small offline model or the lexical baseline scores differently
  from a large API model, so compare explanations with the same simulator.
"""


def render_scorer_comparison(
    results_by_scorer: dict[str, list[ScoreResult]], prefix: str, generated: Sequence[str] = ()
) -> None:
    """Scores and ranks of every explanation under each scorer, rank disagreements marked."""
    st.subheader("Ranking by scorer")
    frame = viz.scorer_ranking_frame(results_by_scorer, generated)
    disagreeing = int((frame["disagreement"] != "").sum()) if not frame.empty else 0
    st.caption(
        "One score and rank (1 = best) per scorer, rows in the order of the first scorer. "
        f"{viz.DISAGREEMENT_MARK} marks explanations the scorers rank differently, with the spread of their "
        f"ranks: {disagreeing} of {len(frame)} here."
    )
    st.dataframe(viz.scorer_ranking_table(results_by_scorer, generated), hide_index=True, key=f"{prefix}_by_scorer")


def render_judgements(results_by_scorer: dict[str, list[ScoreResult]], prefix: str) -> None:
    """For each scorer other than simulation: its metrics, and which sequences or tokens it judged and how."""
    judged = {name: results for name, results in results_by_scorer.items() if name != "simulation" and results}
    if not judged:
        return
    st.subheader("How the scorers judged")
    tabs = st.tabs(list(judged))
    for tab, (name, results) in zip(tabs, judged.items(), strict=True):
        with tab:
            st.dataframe(viz.metrics_table(results), hide_index=True, key=f"{prefix}_{name}_metrics")
            names = [result.explanation for result in results]
            state_key = f"{prefix}_{name}_explanation"
            if st.session_state.get(state_key) not in names:
                st.session_state[state_key] = names[0]
            chosen = st.selectbox("Explanation", names, key=state_key)
            result = next(result for result in results if result.explanation == chosen)
            if result.error:
                st.warning(result.error)
            if name == "detection" or "sequence_predictions" in result.metrics:
                if name in JUDGE_SCORERS:
                    how = "the judge is asked whether the sequence contains what the explanation describes, and "
                    how += "its P(yes) is the prediction; the ROC-AUC of those predictions is the score"
                else:
                    how = (
                        "the prediction is its highest simulated value / 10, times the simulator's chance that "
                        "the explanation applies to the text (column applies, when the simulator gives one); "
                        "the score is the correlation of the predictions with whether each sequence fires"
                    )
                st.caption(
                    "Each sequence is activating when its real maximum is at least "
                    f"{ACTIVE_THRESHOLD:g} of 10; {how}. Verdicts at the decision threshold."
                )
                st.dataframe(viz.detection_table(result), hide_index=True, key=f"{prefix}_{name}_seq")
                st.plotly_chart(viz.detection_figure(result), key=f"{prefix}_{name}_fig")
            if name in JUDGE_SCORERS:
                with st.expander(
                    f"The judge's questions and answers ({len(result.judgments)})", expanded=name != "detection-judge"
                ):
                    st.caption(
                        "Every yes/no question the judge was asked: the text shown (marked tokens in << >>), the "
                        "right answer, the judge's P(yes) and its answer at the threshold."
                    )
                    st.dataframe(viz.judgments_table(result), hide_index=True, key=f"{prefix}_{name}_judged")
            if name == "fuzzing":
                st.caption(
                    "Per activating sequence, the simulation on the really active tokens (outlined) against the "
                    "other tokens; the scorer compares spans at 0.3 x the sequence's max or more with every span of "
                    "as many inactive tokens, in this text and in the non-activating ones."
                )
                st.dataframe(
                    viz.fuzzing_frame(result).map(lambda value: viz.format_number(value, 2)),
                    hide_index=True,
                    key=f"{prefix}_{name}_tok",
                )
                st.html(viz.color_legend_html() + viz.fuzzing_html(result, max_sequences=30))


def render_results(
    results: Sequence[ScoreResult],
    prefix: str,
    settings: dict[str, Any] | None = None,
    generated: Sequence[str] = (),
    offer_chance_level: bool = False,
) -> None:
    """Ranking, heatmaps, per-sequence correlation, scatter and downloads for scored explanations.

    `generated` names the explanations a simulator wrote (marked in the ranking). With
    `offer_chance_level`, results without a chance level get a button that sets
    ``st.session_state[f"{prefix}_chance_requested"]``; the page then scores again with it.
    """
    if not results:
        return
    settings = settings or {}
    usage = usage_summary(results)
    best = viz.best_index(results)
    if best is None:
        st.markdown("**Best explanation:** none could be scored (see the reasons below).")
    else:
        st.markdown(
            f"**Best explanation** (score {results[best].score:.3f}): {_markdown_text(results[best].explanation)}"
        )
    columns = st.columns(3)
    cost = usage["cost_usd"]
    columns[0].metric(
        "Tokens (prompt / completion)",
        f"{usage['prompt_tokens']:,} / {usage['completion_tokens']:,}",
        help=f"{usage['requests']} requests; cost {'unknown or free' if cost is None else f'${cost:.5f}'}",
    )
    columns[1].metric(
        "Cache hits",
        f"{usage['cache_hits']} / {usage['cache_hits'] + usage['cache_misses']}",
        help="Sequences whose simulation came from the cache",
    )
    wall = settings.get("wall_seconds")
    columns[2].metric(
        "Wall time",
        "n/a" if wall is None else f"{wall:.1f} s",
        help=f"From pressing the button to the results. The explanations run concurrently: their own times add up "
        f"to {usage['seconds']:.1f} s.",
    )
    first = results[0]
    timing = f"{usage['seconds']:.2f} s summed over explanations" if wall is None else f"wall time {wall:.1f} s"
    st.caption(
        f"Simulator `{first.simulator}` · scorer `{first.scorer}` · normalization `{first.normalization}` · "
        f"sampling `{first.sampling.get('strategy', '')}` on {viz.count(len(first.sequences), 'sequence')} · "
        f"{timing} · cost {'n/a' if cost is None else f'${cost:.5f}'}"
    )
    st.subheader("Ranking")
    ranking = viz.ranking_table(results, generated)
    st.dataframe(
        ranking,
        hide_index=True,
        key=f"{prefix}_ranking",
        column_config=RANKING_COLUMN_CONFIG,
        column_order=[name for name in ranking.data.columns if name not in DETAIL_COLUMNS],
    )
    with st.expander("Tokens, cost, time and errors per explanation"):
        st.dataframe(
            ranking.data.loc[:, ["rank", "explanation", *(name for name in DETAIL_COLUMNS if name in ranking.data)]],
            hide_index=True,
            key=f"{prefix}_usage",
            column_config=RANKING_COLUMN_CONFIG,
        )
    failed = [result for result in results if result.error]
    for result in failed:
        st.warning(f"**{result.explanation}**: {result.error}")
    _render_chance_level(results, prefix, offer_chance_level)

    if first.scorer in JUDGE_SCORERS:
        st.info(
            f"`{first.scorer}` asks a judge yes/no questions instead of simulating activations, so there are no "
            "simulated activations to draw; its questions and answers are under “How the scorers judged”."
        )
    else:
        _render_simulations(results, prefix)

    st.subheader("Download")
    downloads = (
        ("Ranking (CSV)", results_csv(results), "ranking.csv", "text/csv", "csv"),
        ("Every token (CSV)", tokens_csv(results), "tokens.csv", "text/csv", "tokens"),
        (
            "Everything (JSON)",
            results_json(results, {"settings": _json_safe(settings)}),
            "results.json",
            "application/json",
            "json",
        ),
    )
    for column, (label, data, file_name, mime, key) in zip(st.columns(3), downloads, strict=True):
        column.download_button(label, data, file_name, mime, key=f"{prefix}_dl_{key}", on_click="ignore")


RANKING_LABELS = {
    "interval": "95% interval",
    "roc_auc": "ROC-AUC",
    "spearman": "Spearman",
    "mean_seq_corr": "mean seq. r",
    "prompt_tokens": "prompt tokens",
    "cost_usd": "cost",
}
RANKING_COLUMN_CONFIG = {
    "rank": st.column_config.Column("rank", width="small"),
    "explanation": st.column_config.TextColumn("explanation", width="medium"),
    "error": st.column_config.TextColumn("error", width="medium"),
    "r_squared": st.column_config.TextColumn(
        "r² (no fit)", help="1 − SSE/SST of the simulation as it is, no rescaling: negative when worse than the mean"
    ),
    "chance_percentile": st.column_config.TextColumn(
        "beats chance", help="Share of the unrelated explanations (the chance level) it outscores"
    ),
    "over_chance_p95": st.column_config.TextColumn(
        "over chance p95", help="Its score minus the 95th percentile of the unrelated explanations"
    ),
    **{name: st.column_config.Column(label) for name, label in RANKING_LABELS.items()},
}
"""Short labels, so that the ranking fits the page's width."""
USAGE_COLUMNS = ("prompt_tokens", "cost_usd", "cached", "seconds")
"""Per-explanation usage: under the ranking in an expander of their own (the totals are above it)."""
DETAIL_COLUMNS = (*USAGE_COLUMNS, "error")
"""Left out of the ranking so that it fits the page; the expander has them, and errors are also written out
under it."""

SEQUENCES_PAGE = 10
"""Sequences drawn at first, and added by each "show more"."""
FAILURES_PAGE = 20
"""Sequences in the per-sequence correlation chart at first, and added by each of its "show more"."""


def _markdown_text(text: str) -> str:
    """User text shown in markdown literally (no formatting, no links)."""
    return "".join(f"\\{character}" if character in "\\`*_{}[]()#+-.!|<>~$" else character for character in text)


def _render_simulations(results: Sequence[ScoreResult], prefix: str) -> None:
    """Heatmaps, per-sequence correlations and the scatter of real against simulated activations."""
    st.subheader("Real vs simulated, token by token")
    names = [result.explanation for result in results]
    default = names[: min(3, len(names))]
    state_key = f"{prefix}_heatmap_explanations"
    st.session_state.setdefault(state_key, default)
    if any(name not in names for name in st.session_state.get(state_key, [])):
        # Set, not dropped: a value set in session state is sent to the browser, whose chips would otherwise
        # keep reading the previous run's explanations.
        st.session_state[state_key] = default
    chosen_names = st.multiselect("Explanations to compare (one column each)", names, key=state_key)
    chosen = [result for result in results if result.explanation in chosen_names]
    n_sequences = max(len(result.sequences) for result in results)
    shown_key = f"{prefix}_shown"
    st.session_state.setdefault(shown_key, SEQUENCES_PAGE)
    limit = min(int(st.session_state[shown_key]), n_sequences)
    if chosen:
        st.caption(
            f"The {limit} of {n_sequences} sequences with the highest real activation, highest first; long "
            "sequences scroll inside their box."
        )
        st.html(viz.color_legend_html() + viz.comparison_html(chosen, max_sequences=limit, strongest_first=True))
        if limit < n_sequences:
            st.button(
                f"Show {min(SEQUENCES_PAGE, n_sequences - limit)} more sequences",
                key=f"{prefix}_show_more",
                on_click=_show_more,
                args=(shown_key,),
            )
    else:
        st.info("Choose at least one explanation to see its simulated activations.")

    st.subheader("Where each explanation fails")
    failures_key = f"{prefix}_failures_shown"
    st.session_state.setdefault(failures_key, FAILURES_PAGE)
    failures_shown = min(int(st.session_state[failures_key]), n_sequences)
    st.caption(
        f"Correlation per sequence for the {viz.count(failures_shown, 'sequence')} of {n_sequences} with the "
        "highest real activation, highest first (as in the token view above); the table below has every one."
    )
    st.plotly_chart(viz.per_sequence_figure(results, max_sequences=failures_shown), key=f"{prefix}_per_sequence")
    if failures_shown < n_sequences:
        st.button(
            f"Show {min(FAILURES_PAGE, n_sequences - failures_shown)} more sequences in the chart",
            key=f"{prefix}_failures_more",
            on_click=_show_more,
            args=(failures_key, FAILURES_PAGE),
        )
    errors = [
        (result.explanation, sequence.index, sequence.error)
        for result in results
        for sequence in result.sequences
        if sequence.error
    ]
    if errors:
        with st.expander(f"Errors per sequence ({len(errors)})", expanded=True):
            st.dataframe(
                pd.DataFrame(errors, columns=["explanation", "sequence", "error"]),
                hide_index=True,
                key=f"{prefix}_errors",
            )
    with st.expander("Per-sequence correlation table"):
        table = viz.per_sequence_table(results)
        st.dataframe(table, key=f"{prefix}_seqtab")

    st.subheader("Real vs simulated, all tokens")
    st.plotly_chart(viz.scatter_figure(chosen or results), key=f"{prefix}_scatter")


def _render_chance_level(results: Sequence[ScoreResult], prefix: str, offer: bool) -> None:
    """The ranking chart against the chance level, or (with `offer`) a button to score the chance level."""
    null = null_from_metrics(results[0])
    if null is not None:
        failed = f"; {viz.count(len(null.failed), 'unrelated explanation')} could not be scored" if null.failed else ""
        nothing = (
            f"; {null.predicted_nothing} predicted nothing and count as 0 (no correlation)"
            if null.predicted_nothing
            else ""
        )
        threshold = viz.format_number(null.threshold)
        st.caption(
            f"**Chance level**: {viz.count(null.n, 'explanation')} of unrelated features (a bank shipped with the "
            f"project) scored the same way, with the same simulator and scorer; their 95th percentile is "
            f"{threshold}{nothing}{failed}. **beats chance**: the share of them an explanation outscores; "
            "**over chance p95**: its margin over their 95th percentile. Below the dashed line, an explanation "
            "does no better than one of an unrelated feature."
        )
    elif offer and results[0].scorer not in JUDGE_SCORERS:
        st.button(
            "Score the chance level",
            key=f"{prefix}_chance_button",
            on_click=_request,
            args=(f"{prefix}_chance_requested",),
            help="Scores unrelated explanations (a bank shipped with the project) through the same simulator and "
            "scorer, so each score reads against chance. With a slow simulator this takes about as long as "
            "scoring 20 more explanations (with the cache on, the explanations above are not simulated again).",
        )
    if any(math.isfinite(result.score) for result in results):
        st.plotly_chart(viz.ranking_figure(results), key=f"{prefix}_ranking_chart")


def _request(state_key: str) -> None:
    st.session_state[state_key] = True


def _show_more(state_key: str, page: int = SEQUENCES_PAGE) -> None:
    st.session_state[state_key] = int(st.session_state.get(state_key, page)) + page


def _json_safe(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in settings.items()
        if value is None or isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))
    }
