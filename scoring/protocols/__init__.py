"""Scoring protocols of other tools, reproduced from their published facts: Neuronpedia's score types and SAEBench.

Neuronpedia shows four score types beside an explanation (read in its public
repository, hijohnnylin/neuronpedia, about August 2026):

- ``recall_alt`` (`recall_alt`): a yes/no judge over top, zero and decoy examples;
- ``eleuther_fuzz`` and ``eleuther_recall`` (`eleuther`): EleutherAI's fuzzing and
  detection, batches of five examples answered with a list of 1/0;
- ``eleuther_embedding`` (`eleuther`): ROC-AUC of embedding similarity.

SAEBench's autointerp (`saebench`) is a related protocol: 14 windows of 21 tokens and a
judge that lists the ones that fit.

Each module holds the protocol's facts (counts, seeds, thresholds, request parameters,
parsing, aggregation) as code of our own, prompts written in our own words
(`scoring.protocols.prompts`; a user may supply the original texts in a file), a reader
of the details Neuronpedia stores with a score (``jsonDetails``), from which a claimed
value is re-derived exactly, and a writer of the same schema. `scoring.protocols.neuronpedia`
reads a feature as Neuronpedia's API returns it and picks the examples every type shares;
`scoring.protocols.scorers` registers the protocols as scorers; `scoring.spotcheck` checks
a feature's claims with them.
"""
