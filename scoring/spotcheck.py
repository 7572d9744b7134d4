"""Spot-checking the scores a feature claims (Neuronpedia's, or a file's): derived from their details, re-scored.

For every explanation of a feature and every score claimed for it, `spot_check` tells a
moderator:

1. **derived**: the value the judgments stored with the score (``jsonDetails``) give by
   the protocol's own arithmetic (`scoring.protocols`), exactly. A claim that does not
   follow from its own details is flagged whatever anything else says.
2. **re-scored** (when asked): the same protocol run again on the same examples, by a
   judge of the user's choosing (an API model, a local vLLM, or the embedded ``local``
   model as the offline stand-in): recall_alt from the messages stored with the score;
   delphi's fuzz and detection with the same examples, highlighting, batches, parsing
   and aggregation, run k times because their judge samples at temperature 1; the
   embedding AUC with the embedding model shipped here, unless the user supplies one.
3. **the verdict**: whether the claim agrees with the re-score (within the tolerance,
   widened by 2 sd for sampled judges), and plainly when the re-score's judge model or
   prompt differs from the claim's, because a gap then measures the methods as much as
   the explanation.

The per-example evidence (which top examples the judge called "no match", which decoys
it called "match", which batches failed, which highlighted examples were misjudged) is
in `ClaimCheck.derivation` and `ClaimCheck.rescore`.

This is a public module of the library (docs/architecture.md, "The public surface"):
the names in `__all__` are what a face (the Spot-check page, the ``spot-check``
command) or another tool calls, with what a spot-check reads (a feature:
`parse_feature_text`, `read_feature`, `load_features`; a judge prompt to replace
ours: `Template`, `template_from_messages`, `load_template`, for the protocols in
`TEMPLATE_KINDS`) re-exported from `scoring.protocols`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoring.api import ascore_explanation, resolve_cache, resolve_simulator, run_sync
from scoring.cache import SimulationCache
from scoring.errors import ScoringInputError
from scoring.job import simulator_id
from scoring.protocols import eleuther, recall_alt
from scoring.protocols.common import Derivation, Example, Judged, ProtocolOutcome
from scoring.protocols.eleuther import Embedder
from scoring.protocols.embedders import embedder_for
from scoring.protocols.neuronpedia import (
    EXPLAINER_TYPES,
    SCORE_TYPES,
    Claim,
    FeatureExplanation,
    NeuronpediaFeature,
    load_features,
    parse_feature_text,
    read_feature,
    select_rows,
)
from scoring.protocols.prompts import (
    EMBEDDING_INSTRUCTION,
    OUR_TEMPLATES,
    Template,
    load_template,
    template_from_messages,
)
from scoring.protocols.prompts import KINDS as TEMPLATE_KINDS
from scoring.results import ScoreResult, jsonable
from scoring.scorers import SCORERS
from scoring.shared_types import Progress
from scoring.simulators import Simulator
from scoring.simulators.chat import ChatJudge, can_chat

__all__ = [
    "FLAGGED",
    "MODEL_PLACEHOLDER",
    "SCORE_TYPE_SCORERS",
    "TEMPLATE_KINDS",
    "TOLERANCE",
    "ClaimCheck",
    "FeatureCheck",
    "NeuronpediaFeature",
    "Rescore",
    "SpotCheckOptions",
    "Template",
    "claims_summary",
    "decide",
    "evidence",
    "load_features",
    "load_template",
    "parse_feature_text",
    "read_feature",
    "routed_model",
    "spot_check",
    "template_from_messages",
    "verdict_family",
]

SCORE_TYPE_SCORERS = {
    "recall_alt": "recall-alt",
    "eleuther_fuzz": "eleuther-fuzz",
    "eleuther_recall": "eleuther-recall",
    "eleuther_embedding": "eleuther-embedding",
    "correlation": "simulation",
    **{name: name for name in SCORERS},
}
"""Claimed score types (Neuronpedia's explanationScoreTypeName, or a scorer name of ours) and the scorer here that
computes the same kind of number."""

FLAGGED = ("contradicts its details", "disagrees")
"""Verdicts that say the claim is wrong (made the same way, or refuted by its own details)."""

TOLERANCE = 0.05
"""How far a claim may lie from a re-score (beyond 2 sd for sampled judges) and still agree."""

MODEL_PLACEHOLDER = "{model}"
"""In a judge spec, replaced by each claim's own judge model (as `routed_model` names it), so that every claim is
re-scored by the model that made it: ``openai-compatible:{model}@https://openrouter.ai/api/v1``."""

_MODEL_VENDORS = (("gpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"), ("gemini-", "google"))
"""Prefixes of bare judge model names as Neuronpedia stores them, and the vendor an OpenRouter id puts first."""


def routed_model(name: str, model_ids: dict[str, str] | None = None) -> str:
    """A claim's judge model as an OpenAI-compatible router (OpenRouter) names it.

    A name given in `model_ids` maps to its id; an id with a vendor (``openai/gpt-4o-mini``) stays;
    OpenAI's and Google's bare names get their vendor (``gpt-4o-mini`` -> ``openai/gpt-4o-mini``);
    any other name is sent as it is (name its id in `model_ids` when the router spells it otherwise).
    """
    name = name.strip()
    if model_ids and name in model_ids:
        return model_ids[name]
    if "/" in name:
        return name
    vendor = next((vendor for prefix, vendor in _MODEL_VENDORS if name.lower().startswith(prefix)), None)
    return f"{vendor}/{name}" if vendor else name


def verdict_family(verdict: str) -> str:
    """A verdict without what differs: 'disagrees (methods differ: model)' -> 'disagrees (methods differ)'."""
    return verdict.split(":", 1)[0] + ")" if "(methods differ:" in verdict else verdict


def normalized_model(name: str) -> str:
    """A model name compared across providers: 'openai/gpt-4o-mini', 'openai:gpt-4o-mini' -> 'gpt-4o-mini'."""
    text = name.strip().lower()
    for separator in ("/", ":"):
        text = text.rsplit(separator, 1)[-1]
    return text


def simulator_model(simulator: str) -> str:
    """The model part of a result's simulator id (``openai:gpt-4o-mini`` -> ``gpt-4o-mini``; ``lexical`` -> '')."""
    name, _, model = simulator.partition(":")
    return model or ("" if name in ("lexical", "embedding") else name)


@dataclass
class Rescore:
    """A claim's protocol run again."""

    scorer: str
    judge: str
    """Who answered (a simulator id, or an embedding model's name)."""
    value: float
    sd: float = math.nan
    """Spread over the runs of a sampled judge (NaN for one run)."""
    runs: int = 1
    error: str | None = None
    differences: list[str] = field(default_factory=list)
    """What differs from the claim's method: 'model ...', 'prompt ...', 'examples ...'."""
    notes: list[str] = field(default_factory=list)
    outcome: ProtocolOutcome | None = None
    """The protocol's runs with every example's judgment (the evidence)."""
    result: ScoreResult | None = None
    """The result of a scorer of ours (claims of type simulation, detection, ...)."""

    def to_dict(self, include_evidence: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "scorer": self.scorer,
            "judge": self.judge,
            "value": _finite(self.value),
            "sd": _finite(self.sd),
            "runs": self.runs,
            "error": self.error,
            "differences": self.differences,
            "notes": self.notes,
        }
        if include_evidence and self.outcome is not None:
            data["outcome"] = self.outcome.to_dict()
        if include_evidence and self.result is not None:
            data["result"] = self.result.to_dict(include_sequences=False)
        return data


@dataclass
class ClaimCheck:
    """One claimed score (or one explanation scored afresh) and what the check found."""

    explanation: str
    type: str
    model: str
    claimed: float | None
    verdict: str
    reason: str
    explainer: str = ""
    derivation: Derivation | None = None
    rescore: Rescore | None = None

    @property
    def derived(self) -> float | None:
        if self.derivation is None or not math.isfinite(self.derivation.value):
            return None
        return self.derivation.value

    @property
    def flagged(self) -> bool:
        return self.verdict in FLAGGED

    def to_dict(self, include_evidence: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "explanation": self.explanation,
            "explainer": self.explainer,
            "type": self.type,
            "model": self.model,
            "claimed": self.claimed,
            "derived": self.derived,
            "rescored": None if self.rescore is None else _finite(self.rescore.value),
            "rescored_sd": None if self.rescore is None else _finite(self.rescore.sd),
            "verdict": self.verdict,
            "reason": self.reason,
        }
        if self.derivation is not None:
            derivation = self.derivation.to_dict()
            if not include_evidence:
                derivation.pop("judged")
            data["derivation"] = derivation
        if self.rescore is not None:
            data["rescore"] = self.rescore.to_dict(include_evidence)
        return jsonable(data)  # type: ignore[no-any-return]


@dataclass
class FeatureCheck:
    """Every claim of one feature, checked."""

    name: str
    identity: str
    claims: list[ClaimCheck]
    problems: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[ClaimCheck]:
        return [claim for claim in self.claims if claim.flagged]

    def to_dict(self, include_evidence: bool = True) -> dict[str, Any]:
        return {
            "feature": self.identity,
            "name": self.name,
            "problems": self.problems,
            "flagged": len(self.flagged),
            "claims": [claim.to_dict(include_evidence) for claim in self.claims],
        }


@dataclass
class SpotCheckOptions:
    """How to check: whether to re-score, with which judge, how often, how strictly."""

    rescore: bool = False
    judge: str | Simulator | None = None
    """Spec of the judge that re-scores the judged protocols (default: ``local``)."""
    simulator: str | Simulator | None = None
    """Spec of the simulator for claims of our simulation-based scorers (default: the default simulator)."""
    runs: int = 5
    """Runs of a temperature-1 judge (eleuther_fuzz, eleuther_recall, saebench)."""
    tolerance: float = TOLERANCE
    prompts: dict[str, Template] = field(default_factory=dict)
    """Prompt templates supplied by the user, by protocol (``eleuther_fuzz``, ...); ours otherwise."""
    embedding_model: str | Path | None = None
    """eleuther_embedding's model: a sentence-transformers folder, or ``openai-compatible:<model>@<url>`` (a
    server's /v1/embeddings); default: the judge's own embedding model when it has one, as ``fake`` and
    ``embedding`` do, else the shipped all-MiniLM-L6-v2."""
    trust_remote_code: bool = False
    embedding_instruction: str | None = None
    """The text put before the explanation in the embedding query (default: ours)."""
    explanations: tuple[str, ...] = ()
    """Further explanations to score with each protocol the feature's claims use (re-score only)."""
    cache: SimulationCache | str | Path | bool | None = True
    model_ids: dict[str, str] = field(default_factory=dict)
    """Claim model name -> the id the judge spec's ``{model}`` gets (see `routed_model`)."""



def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def derive_claim(claim: Claim) -> Derivation | None:
    """The claim's value re-derived from its details (None when the type has no details schema or there are none)."""
    kind = claim.type.strip().lower()
    if kind not in SCORE_TYPES:
        return None
    if claim.details_problem:
        return Derivation(kind, math.nan, problem=claim.details_problem)
    if claim.details is None:
        return None
    if kind == "recall_alt":
        return recall_alt.derive(claim.details)
    if kind == "eleuther_embedding":
        return eleuther.derive_embedding(claim.details)
    return eleuther.derive(claim.details, kind)


class _Checker:
    """Checks the claims of one feature with one set of options (shares the judge, cache and embedder)."""

    def __init__(self, feature: NeuronpediaFeature, options: SpotCheckOptions, progress: Progress | None) -> None:
        self.feature = feature
        self.options = options
        self.progress = progress
        self.cache = resolve_cache(options.cache) if options.rescore else None
        self._judge: Simulator | None = None
        self._embedder: Embedder | None = None

    @property
    def per_claim_model(self) -> bool:
        """Whether the judge spec names each claim's own model (``{model}``)."""
        return isinstance(self.options.judge, str) and MODEL_PLACEHOLDER in self.options.judge

    @property
    def judge(self) -> Simulator:
        if self._judge is None:
            self._judge = resolve_simulator(self.options.judge, judge=True)
        return self._judge

    def judge_spec_for(self, claimed_model: str) -> str | Simulator | None:
        """The judge for a claim: the one judge, or the spec with ``{model}`` replaced by the claim's model."""
        if not self.per_claim_model:
            return self.options.judge
        if not claimed_model.strip():
            raise ScoringInputError(
                f"the judge spec has {MODEL_PLACEHOLDER} but the claim names no model; give a judge without it"
            )
        spec = str(self.options.judge)
        return spec.replace(MODEL_PLACEHOLDER, routed_model(claimed_model, self.options.model_ids))

    def _same_model(self, claimed_model: str, judge_model: str) -> bool:
        """Whether a re-score's judge is the claim's model: by name, or because ``{model}`` put it there."""
        if self.per_claim_model:
            return True  # the claim's own name, or the id the user mapped it to
        return normalized_model(claimed_model) == normalized_model(judge_model)

    def judge_for(self, claimed_model: str) -> Simulator:
        if not self.per_claim_model:
            return self.judge
        return resolve_simulator(self.judge_spec_for(claimed_model), judge=True)

    @property
    def embedder(self) -> Embedder:
        """The model a user names, else the judge's own (``fake``'s, ``embedding``'s), else the shipped one."""
        if self._embedder is None:
            named = self.options.embedding_model
            # a named model needs no judge: the judge (local by default) is not even built
            own = None if named or self.per_claim_model else self.judge
            self._embedder = embedder_for(own, named, self.options.trust_remote_code)
        return self._embedder

    def template(self, kind: str) -> Template:
        return self.options.prompts.get(kind) or OUR_TEMPLATES[kind]()

    def _report(self, number: int, total: int) -> Progress | None:
        if self.progress is None:
            return None
        progress = self.progress

        def report(done: int, count: int, message: str) -> None:
            progress(number, total, f"claim {number + 1} of {total}: {message}")

        return report

    async def check(self, explanation: FeatureExplanation, claim: Claim | None, number: int, total: int) -> ClaimCheck:
        """One claim: classified, derived from its details, re-scored when asked, and judged."""
        text = explanation.text
        if claim is None:
            return ClaimCheck(text, "", "", None, "no claim", "no score is claimed", explanation.explainer)
        kind = claim.type.strip().lower()
        check = ClaimCheck(text, claim.type, claim.model, claim.value, "", "", explanation.explainer)
        if kind in EXPLAINER_TYPES:
            check.verdict = "not a score type"
            check.reason = (
                f"{claim.type} names an explainer method on Neuronpedia, not a score type; Neuronpedia's score "
                f"types are {', '.join(SCORE_TYPES)}"
            )
            return check
        if kind and kind not in SCORE_TYPE_SCORERS:
            check.verdict = "unknown score type"
            check.reason = (
                f"{claim.type} is neither one of Neuronpedia's score types ({', '.join(SCORE_TYPES)}) "
                "nor a scorer here"
            )
            return check
        check.derivation = derive_claim(claim)
        if self.options.rescore:
            check.rescore = await self.rescore(
                text, kind, claim.model, check.derivation, claim.details, True, self._report(number, total)
            )
        check.verdict, check.reason = decide(check, self.options.tolerance)
        return check

    async def check_new(self, text: str, reference: Claim, number: int, total: int) -> ClaimCheck:
        """A further explanation scored by the protocol of `reference`, on its stored examples (and messages)."""
        kind = reference.type.strip().lower()
        derivation = derive_claim(reference)
        rescore = await self.rescore(
            text, kind, reference.model, derivation, reference.details, False, self._report(number, total)
        )
        return ClaimCheck(
            text, reference.type, reference.model, None, "no claim", _rescore_line(rescore), "given here",
            rescore=rescore,
        )

    async def rescore(
        self,
        text: str,
        kind: str,
        claimed_model: str,
        derivation: Derivation | None,
        details: Any,
        same_explanation: bool,
        report: Progress | None,
    ) -> Rescore:
        """The claim's protocol run again on its stored examples (or, without details, on the feature's rows)."""
        scorer = SCORE_TYPE_SCORERS.get(kind, "simulation")
        try:
            if kind == "recall_alt":
                return await self._recall_alt(text, claimed_model, derivation, details, same_explanation, report)
            if kind in eleuther.KINDS:
                return await self._delphi(text, kind, claimed_model, derivation, report)
            if kind == "eleuther_embedding":
                return await self._embedding(text, claimed_model, derivation)
            return await self._ours(text, scorer, kind, claimed_model, report)
        except ScoringInputError as exc:
            return Rescore(scorer, "", math.nan, error=str(exc))

    def _chat_judge(self, scorer: str, claimed_model: str) -> tuple[ChatJudge | None, str, str | None]:
        judge = self.judge_for(claimed_model)
        name = simulator_id(judge, writing=True)
        if not can_chat(judge):
            return None, name, (
                f"the judge {name} cannot answer {scorer}'s chat requests; choose local, openai:<model> or "
                "openai-compatible:<model>@<url>"
            )
        return judge, name, None  # type: ignore[return-value]

    def _rows(self) -> list[tuple[list[str], list[float], int | None]]:
        selection = select_rows(self.feature.rows)
        return [(row.tokens, row.values, row.source) for row in [*selection.top, *selection.zero]]

    async def _recall_alt(
        self,
        text: str,
        claimed_model: str,
        derivation: Derivation | None,
        details: Any,
        same_explanation: bool,
        report: Progress | None,
    ) -> Rescore:
        judge, name, problem = self._chat_judge("recall-alt", claimed_model)
        if judge is None:
            return Rescore("recall-alt", name, math.nan, error=problem)
        notes: list[str] = []
        template = self.template("recall_alt")
        finals: list[str | None] | None = None
        if derivation is not None and derivation.judged:
            examples = [item.example for item in derivation.judged]
            _, stored, _ = recall_alt.read_details(details)
            prefixes = [tuple(messages[:-1]) if messages else template.messages for messages in stored]
            prompt = "stored" if all(stored) else template.source
            if same_explanation:
                finals = []
                for example, messages in zip(examples, stored, strict=True):
                    rebuilt = recall_alt.build_request(example, text, ()).messages[-1][1]
                    final = messages[-1][1] if messages else None
                    finals.append(final if final is not None and final != rebuilt else None)
                changed = sum(final is not None for final in finals)
                if changed:
                    notes.append(
                        f"{changed} stored requests differ from the ones rebuilt from their tokens, values and "
                        "explanation; those are sent as stored"
                    )
            else:
                notes.append("the stored messages with this explanation in place of the stored one")
        else:
            selection = select_rows(self.feature.rows)
            if not selection.top:
                return Rescore("recall-alt", name, math.nan, error="no details and no top rows to re-score from")
            examples = recall_alt.examples_from_selection(selection)
            prefixes = [template.messages]
            prompt = template.source
            notes.append("no stored details: examples re-picked from the feature's activations, with our decoys")
        outcome, _ = await recall_alt.score(
            text, examples, judge, prefixes, finals=finals, judge_id=name, prompt=prompt, cache=self.cache,
            progress=report,
        )
        return self._from_outcome("recall-alt", outcome, claimed_model, notes)

    async def _delphi(
        self, text: str, kind: str, claimed_model: str, derivation: Derivation | None, report: Progress | None
    ) -> Rescore:
        scorer = SCORE_TYPE_SCORERS[kind]
        judge, name, problem = self._chat_judge(scorer, claimed_model)
        if judge is None:
            return Rescore(scorer, name, math.nan, error=problem)
        notes: list[str] = []
        if derivation is not None and derivation.judged:
            examples = [_fresh(item.example) for item in derivation.judged]
            notes.append("the stored examples, in the stored order and batches")
        else:
            rows = self._rows()
            if not any(eleuther.is_activating(values) for _, values, _ in rows):
                return Rescore(scorer, name, math.nan, error="no details and no activating rows to re-score from")
            prepared = eleuther.prepare(rows, kind)
            examples = prepared.examples
            notes += ["no stored details: examples re-picked from the feature's activations", *prepared.notes]
        outcome, _ = await eleuther.score(
            text, examples, judge, self.template(kind), kind, runs=self.options.runs, judge_id=name,
            cache=self.cache, progress=report,
        )
        return self._from_outcome(scorer, outcome, claimed_model, notes)

    async def _embedding(self, text: str, claimed_model: str, derivation: Derivation | None) -> Rescore:
        if derivation is not None and derivation.judged:
            examples = [item.example for item in derivation.judged]
        else:
            rows = self._rows()
            examples = eleuther.prepare(rows, eleuther.RECALL).examples
        instruction = self.options.embedding_instruction
        outcome, _ = await eleuther.embedding_score(
            text, examples, self.embedder, instruction or EMBEDDING_INSTRUCTION, "file" if instruction else "ours"
        )
        rescore = Rescore(
            "eleuther-embedding", outcome.judge, outcome.mean, runs=1, error=outcome.error, outcome=outcome
        )
        if normalized_model(self.embedder.name) != normalized_model(claimed_model or eleuther.EMBEDDING_MODEL):
            rescore.differences.append(f"model ({self.embedder.name}, the claim's {claimed_model or 'unnamed'})")
        if not instruction:
            rescore.differences.append("prompt (our query wording)")
        return rescore

    async def _ours(
        self, text: str, scorer: str, kind: str, claimed_model: str, report: Progress | None
    ) -> Rescore:
        if not self.feature.records:
            return Rescore(scorer, "", math.nan, error="the feature has no activations to re-score on")
        options: dict[str, Any] = {}
        if scorer in ("eleuther-fuzz", "eleuther-recall", "saebench"):
            options["scorer_options"] = {"runs": self.options.runs}
        judged = scorer not in ("simulation", "detection", "fuzzing", "eleuther-embedding")
        result = await ascore_explanation(
            text,
            self.feature.records,
            scorer=scorer,
            simulator=self.judge_spec_for(claimed_model) if judged else self.options.simulator,
            cache=self.cache if self.cache is not None else False,
            progress=report,
            **options,
        )
        rescore = Rescore(
            scorer,
            result.simulator,
            result.score,
            sd=float(result.metrics.get("sd", math.nan) or math.nan),
            runs=int(result.metrics.get("runs", 1) or 1),
            error=result.error,
            result=result,
        )
        low, high = result.interval
        if math.isfinite(low) and math.isfinite(high):
            rescore.notes.append(f"95% interval [{low:.3f}, {high:.3f}]")
        if not kind:
            rescore.differences.append("method (the claim does not say how it was scored; re-scored by simulation)")
        elif not claimed_model:
            rescore.differences.append(f"model (the claim does not name one; re-scored with {result.simulator})")
        elif not self._same_model(claimed_model, simulator_model(result.simulator)):
            rescore.differences.append(f"model ({result.simulator}, the claim's {claimed_model})")
        return rescore

    def _from_outcome(self, scorer: str, outcome: ProtocolOutcome, claimed_model: str, notes: list[str]) -> Rescore:
        rescore = Rescore(
            scorer, outcome.judge, outcome.mean, outcome.sd, len(outcome.runs), outcome.error,
            notes=[*notes, *outcome.notes], outcome=outcome,
        )
        judge_model = simulator_model(outcome.judge)
        if not claimed_model:
            rescore.differences.append(f"model (the claim does not name one; re-scored with {outcome.judge})")
        elif not self._same_model(claimed_model, judge_model):
            rescore.differences.append(f"model ({outcome.judge}, the claim's {claimed_model})")
        if outcome.prompt == "ours":
            rescore.differences.append("prompt (ours)")
        return rescore


def _fresh(example: Example) -> Example:
    return Example(example.group, example.tokens, example.values, example.expected, example.text, example.marked)


def decide(check: ClaimCheck, tolerance: float = TOLERANCE) -> tuple[str, str]:
    """The verdict of a checked claim and a one-line reason.

    The verdicts, most serious first: contradicts its details, disagrees, disagrees (methods differ), agrees,
    agrees (methods differ), follows from its details, details unreadable, not checked, not a score type,
    unknown score type, no claim (a "(methods differ)" verdict names what differs after a colon).
    """
    claimed = check.claimed
    derivation, rescore = check.derivation, check.rescore
    parts: list[str] = []
    verdict = ""
    if claimed is None:
        return "no claim", "the score has no value"
    if derivation is not None:
        count = len(derivation.judged)
        follows = derivation.follows(claimed)
        if follows:
            reading = derivation.reading_for(claimed)
            parts.append(
                f"{count} stored judgments give {claimed:.4g}" + (f", if {reading}" if reading else "")
            )
        elif follows is False:
            verdict = "contradicts its details"
            parts.append(f"claimed {claimed:.4g}, but its {count} stored judgments give {derivation.value:.4g}")
        elif derivation.judged:
            verdict = "contradicts its details"
            parts.append(f"the protocol saves no score from these details ({derivation.problem})")
        else:
            parts.append(f"details unreadable: {derivation.problem}")
    elif check.type.strip().lower() in SCORE_TYPES:
        parts.append("no details stored")
    if rescore is not None:
        if rescore.error or not math.isfinite(rescore.value):
            parts.append(f"not re-scored: {rescore.error or 'no value'}")
        else:
            spread = 2 * rescore.sd if math.isfinite(rescore.sd) else 0.0
            agrees = abs(claimed - rescore.value) <= tolerance + spread
            word = "agrees" if agrees else "disagrees"
            spread_text = f" ± {rescore.sd:.3f} over {rescore.runs} runs" if rescore.runs > 1 else ""
            shown = f"{rescore.value:.3f}{spread_text}"
            differs = "; methods differ: " + ", ".join(rescore.differences) if rescore.differences else ""
            parts.append(f"re-scored {shown} with {rescore.judge}{differs}")
            if not verdict:
                if rescore.differences:
                    kinds = ", ".join(difference.split(" ", 1)[0] for difference in rescore.differences)
                    verdict = f"{word} (methods differ: {kinds})"
                else:
                    verdict = word
    if not verdict:
        if derivation is not None and derivation.follows(claimed):
            verdict = "follows from its details"
        elif derivation is not None and derivation.problem and not derivation.judged:
            verdict = "details unreadable"
        else:
            verdict = "not checked"
            if rescore is None:
                parts.append("re-score to check it")
    return verdict, "; ".join(parts)


async def aspot_check(
    feature: NeuronpediaFeature, options: SpotCheckOptions | None = None, progress: Progress | None = None
) -> FeatureCheck:
    """Check every claim of `feature` (async); see `spot_check`."""
    options = options or SpotCheckOptions()
    if options.runs < 1:
        raise ScoringInputError("runs must be at least 1")
    if options.explanations and not options.rescore:
        raise ScoringInputError("scoring further explanations needs a re-score: turn re-scoring on")
    checker = _Checker(feature, options, progress)
    pairs: list[tuple[FeatureExplanation, Claim | None]] = [
        (explanation, claim)
        for explanation in feature.explanations
        for claim in (list[Claim | None](explanation.claims) or [None])
    ]
    references: dict[str, Claim] = {}
    for _, claim in pairs:
        if claim is not None and claim.type.strip().lower() in SCORE_TYPES:
            kind = claim.type.strip().lower()
            if kind not in references or (references[kind].details is None and claim.details is not None):
                references[kind] = claim
    total = len(pairs) + len(options.explanations) * len(references)
    checks = [
        await checker.check(explanation, claim, number, total) for number, (explanation, claim) in enumerate(pairs)
    ]
    for text in options.explanations:
        for reference in references.values():
            checks.append(await checker.check_new(text, reference, len(checks), total))
    return FeatureCheck(feature.name, feature.identity, checks, list(feature.problems))


def _rescore_line(rescore: Rescore) -> str:
    if rescore.error:
        return f"not scored: {rescore.error}"
    spread = f" ± {rescore.sd:.3f} over {rescore.runs} runs" if rescore.runs > 1 and math.isfinite(rescore.sd) else ""
    return f"scored {rescore.value:.3f}{spread} with {rescore.judge}"


def spot_check(feature: NeuronpediaFeature, options: SpotCheckOptions | None = None, **kwargs: Any) -> FeatureCheck:
    """Check every claim of a feature: derived from its details, re-scored when ``rescore=True``.

    `feature` comes from `scoring.protocols.neuronpedia.read_feature` (parsed JSON),
    `parse_feature_text` (pasted text) or `load_features` (a file, JSON or JSONL). Options:
    a `SpotCheckOptions`, or its fields as keywords (rescore, judge, runs, tolerance,
    prompts, embedding_model, explanations, cache, ...), and progress (callback(done, total, message)).
    """
    progress = kwargs.pop("progress", None)
    if kwargs:
        unknown = sorted(set(kwargs) - set(SpotCheckOptions.__dataclass_fields__))
        if unknown:
            raise ScoringInputError(f"unknown spot-check option {', '.join(unknown)}")
        options = SpotCheckOptions(**kwargs)
    return run_sync(aspot_check(feature, options, progress))


def claims_summary(checks: Sequence[FeatureCheck]) -> dict[str, int]:
    """How many claims got each verdict family, over several features."""
    counts: dict[str, int] = {}
    for check in checks:
        for claim in check.claims:
            family = verdict_family(claim.verdict)
            counts[family] = counts.get(family, 0) + 1
    return counts


def evidence(judged: Sequence[Judged]) -> dict[str, list[Judged]]:
    """Where the explanation fails, from one set of judgments: top/activating examples judged "no",
    zero/decoy/non-activating ones judged "yes", failed calls and dropped batches."""
    return {
        "missed": [item for item in judged if item.example.expected and item.answer is False],
        "false alarms": [item for item in judged if not item.example.expected and item.answer is True],
        "failed": [item for item in judged if item.failed],
    }
