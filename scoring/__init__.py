"""Score natural-language explanations of neurons and SAE latents, and generate candidate ones.

    from scoring import load_records, get_simulator, score_explanation, rank_explanations, generate_explanations

The public API: the names in `__all__`, and the public modules `scoring.errors`,
`scoring.textformat`, `scoring.spotcheck`, `scoring.viz` and `scoring.subjects`
(docs/architecture.md, "The public surface"). Everything else is internal.
"""

__version__ = "0.1.0"

from scoring.api import (
    agenerate_explanations,
    anull_scores,
    arank_explanations,
    ascore_attention_explanation,
    ascore_explanation,
    default_simulator_choice,
    default_simulator_spec,
    generate_explanations,
    null_scores,
    preparation_needed,
    prepare_simulator,
    rank_explanations,
    rank_with_scorers,
    score_attention_explanation,
    score_explanation,
)
from scoring.bench import load_puzzles, run_bench
from scoring.cache import SimulationCache, default_cache_directory, open_cache
from scoring.errors import ScoringInputError
from scoring.null import NullDistribution, null_from_metrics
from scoring.prepared import PreparedRecords, prepare_records
from scoring.pricing import estimate_api_usage
from scoring.process_settings import configure_process
from scoring.records import (
    NORMALIZATIONS,
    ActivationRecord,
    AttentionRecord,
    Limits,
    load_attention_records,
    load_records,
    normalize,
)
from scoring.results import (
    GeneratedExplanation,
    ScoreResult,
    SequenceResult,
    results_csv,
    results_json,
    tokens_csv,
    usage_summary,
)
from scoring.sampling import STRATEGIES as SAMPLING_STRATEGIES
from scoring.scorers import ATTENTION_SCORERS, JUDGE_SCORERS, SCORERS
from scoring.shared_types import (
    ACTIVE_THRESHOLD,
    DECISION_THRESHOLD,
    JUDGE_THRESHOLD,
    Credentials,
    PreparationProgress,
    Progress,
)
from scoring.simulators import SIMULATORS, Explainer, Simulator, get_simulator, register_simulator

__all__ = [
    "ACTIVE_THRESHOLD",
    "ATTENTION_SCORERS",
    "DECISION_THRESHOLD",
    "JUDGE_SCORERS",
    "JUDGE_THRESHOLD",
    "NORMALIZATIONS",
    "SAMPLING_STRATEGIES",
    "SCORERS",
    "SIMULATORS",
    "ActivationRecord",
    "AttentionRecord",
    "Credentials",
    "Explainer",
    "GeneratedExplanation",
    "Limits",
    "NullDistribution",
    "PreparationProgress",
    "PreparedRecords",
    "Progress",
    "ScoreResult",
    "ScoringInputError",
    "SequenceResult",
    "SimulationCache",
    "Simulator",
    "agenerate_explanations",
    "anull_scores",
    "arank_explanations",
    "ascore_attention_explanation",
    "ascore_explanation",
    "__version__",
    "configure_process",
    "default_cache_directory",
    "default_simulator_choice",
    "default_simulator_spec",
    "estimate_api_usage",
    "generate_explanations",
    "get_simulator",
    "load_attention_records",
    "load_puzzles",
    "load_records",
    "normalize",
    "null_from_metrics",
    "null_scores",
    "preparation_needed",
    "prepare_records",
    "prepare_simulator",
    "open_cache",
    "rank_explanations",
    "rank_with_scorers",
    "register_simulator",
    "results_csv",
    "results_json",
    "run_bench",
    "score_attention_explanation",
    "score_explanation",
    "tokens_csv",
    "usage_summary",
]
