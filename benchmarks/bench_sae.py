"""Speed of SAE latents: training, loading, indexing, records and text search, on CPU.

    python benchmarks/bench_sae.py [--directory cache/subjects] [--train-windows 256] [--index-windows 128] [--json]

Figures:
- training: `train_sae` with the shipped recipe (layer 6, 2048 latents, k 32) on
  --train-windows windows in a temporary folder (capture and optimiser time
  apart), and the full shipped run's own figures from its training.json;
- loading: `load_sae` of the shipped SAE in a fresh interpreter (import included);
- indexing: a latent index of --index-windows windows of the bundled corpus;
- records: one latent's top 20 (near-duplicates merged with MiniLM) + random 10;
- search: `search_units` over all 18 layers' MLP neurons and the SAE's latents
  (the model pass included), median of --repeats runs on three texts.
The machine is shared, so every time is an upper bound. Prints one line per figure, or JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOAD_SNIPPET = """
import time
start = time.perf_counter()
from scoring.subjects.sae import load_sae
load_sae({path!r})
print(time.perf_counter() - start)
"""
TEXTS = (
    "My favorite color is red.",
    "The capital of France is Paris, and its currency is the euro since 2002.",
    "In 1865 the ship sailed from Liverpool to New York; the captain wrote in his log that the sea was calm "
    "and the crew was in good health, though the coal would not last another week.",
)


def main() -> int:
    from scoring import configure_process

    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default=None, help="subjects folder holding the converted model")
    parser.add_argument("--train-windows", type=int, default=256, help="training windows for the timed run")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--index-windows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from scoring import subjects
    from scoring.subjects import latents
    from scoring.subjects.index import embedding_similarity
    from scoring.subjects.sae import load_sae
    from scoring.subjects.train import TrainingSettings, train_sae

    figures: dict[str, float | int | str] = {}
    shipped = latents.default_sae_path()
    if shipped is None:
        raise SystemExit("the shipped SAE is missing (scoring/subjects/data/sae/...)")
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET.format(path=str(shipped))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    figures["sae_load_seconds_new_process"] = float(completed.stdout.strip().splitlines()[-1])
    start = time.perf_counter()
    sae = load_sae(shipped)
    figures["sae_load_seconds_in_process"] = time.perf_counter() - start
    shipped_run = json.loads((shipped / "training.json").read_text(encoding="utf-8"))["report"]
    for name in ("capture_seconds", "train_seconds", "explained_variance", "l0", "dead_share", "neuron_l0"):
        figures[f"shipped_{name}"] = shipped_run[name]

    subject = subjects.load_subject(directory=args.directory)
    corpus = subjects.default_corpus()
    with tempfile.TemporaryDirectory(prefix="bench-sae-") as scratch:
        start = time.perf_counter()
        _, report = train_sae(
            subject,
            Path(scratch) / "sae",
            TrainingSettings(layer=6, windows=args.train_windows, epochs=args.epochs),
            corpus=corpus,
        )
        figures["train_total_seconds"] = time.perf_counter() - start
        figures["train_windows"] = args.train_windows
        figures["train_capture_seconds"] = report.capture_seconds
        figures["train_optimiser_seconds"] = report.train_seconds
        figures["train_explained_variance"] = report.explained_variance

        start = time.perf_counter()
        index = latents.open_latent_index(
            subject, sae, corpus, max_windows=args.index_windows, directory=Path(scratch) / "index"
        )
        figures["latent_index_seconds"] = time.perf_counter() - start
        figures["latent_index_windows"] = index.n_windows
        busiest = int(np.argmax((np.asarray(index.maxima[latents.LATENT]) > 0).sum(axis=0)))
        embed = embedding_similarity()
        start = time.perf_counter()
        index.records(subject, sae.config.layer, busiest, kind=latents.LATENT, top=20, random=10, embed=embed)
        figures["latent_records_top20_random10_seconds"] = time.perf_counter() - start

    for label, units in (("neurons_and_latents", ("latent", "neuron")), ("latents_only", ("latent",))):
        latencies = []
        for text in TEXTS:
            latents.search_units(subject, text, saes=[sae], units=units)  # warm-up
            for _ in range(args.repeats):
                start = time.perf_counter()
                latents.search_units(subject, text, saes=[sae], units=units)
                latencies.append(time.perf_counter() - start)
        figures[f"search_{label}_median_ms"] = 1000 * statistics.median(latencies)
        figures[f"search_{label}_max_ms"] = 1000 * max(latencies)
    figures["torch_threads"] = subject.threads

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:<45} {value:.3f}" if isinstance(value, float) else f"{name:<45} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
