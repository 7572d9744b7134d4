"""Score natural-language explanations of neurons and SAE latents, and generate candidate ones.

    from scoring import load_records, get_simulator, score_explanation, rank_explanations, generate_explanations
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
from scoring.cache import SimulationCache, default_cache_directory, open_cache
from scoring.errors import ScoringInputError
from scoring.null import NullDistribution
from scoring.records import ActivationRecord, AttentionRecord, Limits, load_attention_records, load_records, normalize
from scoring.results import GeneratedExplanation, ScoreResult, SequenceResult
from scoring.scorers import SCORERS
from scoring.shared_types import Credentials
from scoring.simulators import SIMULATORS, Explainer, Simulator, get_simulator, register_simulator

__all__ = [
    "SCORERS",
    "SIMULATORS",
    "ActivationRecord",
    "AttentionRecord",
    "Credentials",
    "Explainer",
    "GeneratedExplanation",
    "Limits",
    "NullDistribution",
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
    "default_cache_directory",
    "default_simulator_choice",
    "default_simulator_spec",
    "generate_explanations",
    "get_simulator",
    "load_attention_records",
    "load_records",
    "normalize",
    "null_scores",
    "preparation_needed",
    "prepare_simulator",
    "open_cache",
    "rank_explanations",
    "rank_with_scorers",
    "register_simulator",
    "score_attention_explanation",
    "score_explanation",
]
