"""Text search over neurons and SAE latents: which units fire on a text, ranked by how specific that is.

A unit that fires on every text (a 100%-density neuron, an always-on latent)
has a large activation on any search, so ranking by raw activation lists the
same dense units whatever the text. Ranked by ``specificity``, a unit's
activation on the text is placed in its own distribution on the corpus (its
corpus percentile: the share of the indexed corpus windows whose maximum is
below it), and that percentile is discounted by how often the unit fires at
all: specificity = percentile × (1 − density). The discount matters because the
percentile alone saturates: a few hundred windows cannot rank an activation
above the unit's corpus maximum, and most MLP neurons of the shipped model fire
in every window and exceed their corpus maximum on any text unlike the corpus
(first person, dialogue), so on "My favorite color is red." 66 units, nearly all
100%-density neurons, tied at percentile 1 and the latent that fires on " red"
came 82nd. Ties are broken by the activation as a share of the unit's largest
window maximum. The same corpus index gives each unit's density, and the
density filter is applied before the top-k cut, so it never hides units that
fire only because they fell outside the strongest few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.errors import ScoringInputError
from scoring.subjects.index import ActivationIndex, window_density
from scoring.subjects.latents import LATENT, LatentIndex, capture_latents, sae_fingerprint
from scoring.subjects.model import SubjectModel
from scoring.subjects.sae import SparseAutoencoder

SEARCH_MAX_TOKENS = 512
"""Longest text `search_units` takes: all 18 layers' neurons for 512 tokens are already ~75 MB of floats."""

RANKINGS = ("specificity", "activation", "layer")
"""specificity: the corpus percentile of the unit's activation × (1 − the unit's density) (needs the corpus
indexes); activation: raw; layer: divided by the root-mean-square activation of the unit's layer and kind on the
text."""

UNIT_KINDS = ("latent", "neuron")


@dataclass
class SearchHit:
    """A unit (neuron or latent) that fires on a searched text."""

    unit: str
    """'latent' or 'neuron'."""
    layer: int
    """Layer the unit reads."""
    index: int
    """Neuron or latent number."""
    activation: float
    """Its activation at `token_position` (the maximum over the text, or at the chosen token); always > 0."""
    score: float
    """What the hits are ranked by: `percentile` × (1 − `density`) (0..1) for ``specificity``, the activation for
    ``activation``, the activation divided by the layer's RMS on the text for ``layer``."""
    token_position: int
    """Position of the token scored."""
    token: str
    """That token's text."""
    values: list[float]
    """The unit's activation on every token of the text."""
    percentile: float | None = None
    """Share of the corpus windows whose maximum is below `activation` (None without the corpus index)."""
    of_max: float | None = None
    """`activation` divided by the unit's largest window maximum in the corpus (inf when it never fired there)."""
    density: float | None = None
    """Share of the corpus windows in which the unit fires (maximum > 0); None without the corpus index."""


@dataclass
class CorpusStanding:
    """Where activations stand in their units' corpus distributions (one value per unit)."""

    percentile: np.ndarray
    """Share of windows whose maximum is strictly below the activation."""
    of_max: np.ndarray
    """Activation / the largest window maximum (inf when the unit never fired in the corpus)."""
    density: np.ndarray
    """Share of windows whose maximum is above 0."""

    @property
    def specificity(self) -> np.ndarray:
        """`percentile` × (1 − `density`): how far above its corpus windows the activation stands, discounted by
        how often the unit fires at all (0 for a unit that fires in every window, however strongly)."""
        return self.percentile * (1.0 - self.density)


def corpus_standing(window_maxima: np.ndarray, activations: np.ndarray) -> CorpusStanding:
    """`window_maxima` (windows, units) of a corpus index, `activations` (units,) -> their `CorpusStanding`."""
    table = np.asarray(window_maxima, dtype=np.float32)
    strength = np.asarray(activations, dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != strength.shape[0]:
        raise ScoringInputError(
            f"the corpus index holds {table.shape[-1]} units here, the text {strength.shape[0]}: rebuild the index"
        )
    percentile = (table < strength[None, :]).mean(axis=0)
    peak = table.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        of_max = np.where(peak > 0, strength / np.where(peak > 0, peak, 1.0), np.inf)
    return CorpusStanding(percentile, of_max, window_density(table))


def _layer_table(index: ActivationIndex, unit: str, layer: int) -> np.ndarray:
    """(windows, units) window maxima of one layer's units in `index`."""
    if unit == "latent":
        return np.asarray(index.maxima[LATENT], dtype=np.float32)
    return np.asarray(index.maxima["mlp"][:, layer, :], dtype=np.float32)


def _index_for(
    unit: str, sae: SparseAutoencoder | None, indexes: Sequence[ActivationIndex]
) -> ActivationIndex | None:
    """The index among `indexes` that holds `unit`'s corpus maxima (the SAE's latent index for latents)."""
    if unit == "neuron":
        return next((index for index in indexes if not isinstance(index, LatentIndex)), None)
    assert sae is not None
    for index in indexes:
        if isinstance(index, LatentIndex) and (
            index.sae is sae or index.meta.get("sae_fingerprint") == sae_fingerprint(sae)
        ):
            return index
    return None


def search_units(
    subject: SubjectModel,
    text: str,
    *,
    layers: Sequence[int] | None = None,
    saes: Sequence[SparseAutoencoder] = (),
    units: Sequence[str] = UNIT_KINDS,
    rank: str = "activation",
    indexes: Sequence[ActivationIndex] = (),
    max_density: float | None = None,
    token_position: int | None = None,
    top: int = 20,
    max_tokens: int = SEARCH_MAX_TOKENS,
) -> tuple[list[str], list[SearchHit]]:
    """The neurons and latents that fire on `text` (activation > 0): (tokens, the `top` hits, best first).

    Neurons are the MLP neurons of `layers` (all when None); latents are those of
    each SAE whose layer is in `layers`. With `token_position`, a unit's activation
    is the one at that token instead of its maximum over the text.

    `rank` (see `RANKINGS`): ``specificity`` orders by the corpus percentile of the
    activation times the share of corpus windows where the unit is silent (1 − density),
    then by its share of the unit's corpus maximum; ``activation`` by the
    raw activation; ``layer`` by the activation divided by the RMS of all activations
    of its layer and kind on this text. `indexes` are the corpus indexes (`open_index`
    for neurons, `open_latent_index` for each SAE): they give every hit its percentile,
    share of maximum and density, and ``specificity`` and `max_density` need them.
    Units firing in more than `max_density` of the corpus windows are dropped before
    the `top` best are kept.
    """
    if rank not in RANKINGS:
        raise ScoringInputError(f"rank must be one of {', '.join(RANKINGS)}, got {rank!r}")
    unknown = set(units) - set(UNIT_KINDS)
    if unknown or not units:
        raise ScoringInputError("units must be 'latent', 'neuron' or both")
    if max_density is not None and not 0 <= max_density <= 1:
        raise ScoringInputError(f"max_density is a share of windows from 0 to 1, got {max_density!r}")
    if not text:
        raise ScoringInputError("the text is empty; type some text to search with")
    layer_list = list(range(subject.n_layers)) if layers is None else sorted({int(layer) for layer in layers})
    for layer in layer_list:
        subject.check_unit(layer)
    tokenized = subject.tokenize(text)
    n_tokens = len(tokenized.token_ids)
    if n_tokens > max_tokens:
        raise ScoringInputError(
            f"the text has {n_tokens} tokens; search reads at most {max_tokens} (every layer's units are kept "
            "for every token): search a shorter passage"
        )
    if token_position is not None and not 0 <= token_position < n_tokens:
        raise ScoringInputError(f"token position {token_position} is outside the text's {n_tokens} tokens")
    ids = np.asarray([subject.with_bos(tokenized.token_ids)])
    skip = 1 if subject.bos_token_id is not None else 0
    tables: list[tuple[str, int, SparseAutoencoder | None, np.ndarray]] = []
    if "neuron" in units and layer_list:
        neurons = subject.capture(ids, layer_list, "mlp")[0, :, skip:, :]
        tables += [("neuron", layer, None, neurons[i]) for i, layer in enumerate(layer_list)]
    if "latent" in units:
        for each in saes:
            if each.config.layer in layer_list:
                tables.append(("latent", each.config.layer, each, capture_latents(subject, each, ids)[0, skip:, :]))
    needs_index = rank == "specificity" or (max_density is not None and max_density < 1)
    hits: list[SearchHit] = []
    for unit, layer, sae, values in tables:
        if values.shape[0] == 0:
            continue
        if token_position is None:
            strength, positions = values.max(axis=0), values.argmax(axis=0)
        else:
            strength, positions = values[token_position], np.full(values.shape[1], token_position)
        index = _index_for(unit, sae, indexes)
        if index is None and needs_index:
            what = f"the SAE {sae.name}'s latents" if sae is not None else "the neurons"
            raise ScoringInputError(
                f"ranking by specificity and the density filter compare with the corpus index of {what}, which "
                "is not given: build it (open_index / open_latent_index) or rank by activation"
            )
        standing = corpus_standing(_layer_table(index, unit, layer), strength) if index is not None else None
        keep = strength > 0
        if standing is not None and max_density is not None:
            keep &= standing.density <= max_density + 1e-9
        if rank == "specificity":
            assert standing is not None
            score = standing.specificity
            order_keys: tuple[np.ndarray, ...] = (-standing.of_max, -score)
        elif rank == "layer":
            scale = float(np.sqrt(np.mean(np.square(values))))
            score = strength / (scale if scale > 0 else 1.0)
            order_keys = (-score,)
        else:
            score = strength
            order_keys = (-score,)
        candidates = np.flatnonzero(keep)
        order = candidates[np.lexsort((candidates, *(keys[candidates] for keys in order_keys)))][: max(0, top)]
        hits += [
            SearchHit(
                unit,
                layer,
                int(i),
                float(strength[i]),
                float(score[i]),
                int(positions[i]),
                tokenized.tokens[int(positions[i])],
                [float(value) for value in values[:, i]],
                None if standing is None else float(standing.percentile[i]),
                None if standing is None else float(standing.of_max[i]),
                None if standing is None else float(standing.density[i]),
            )
            for i in order
        ]
    if rank == "specificity":
        hits.sort(key=lambda hit: (-hit.score, -(hit.of_max or 0.0), hit.unit, hit.layer, hit.index))
    else:
        hits.sort(key=lambda hit: (-hit.score, hit.unit, hit.layer, hit.index))
    return tokenized.tokens, hits[: max(0, top)]
