"""Speed of the subject model: loading, activation capture, corpus indexing, top-k look-ups.

    python benchmarks/bench_subjects.py [--directory DIR] [--max-windows 256] [--threads 2] [--index-threads 1] [--json]

Without --directory the model is converted into a fresh temporary folder, so the
first load is a true first load (GGUF -> PyTorch); the cached load then runs in a
new process, as a user's next session would. Prints one line per figure, or JSON.
"""

from __future__ import annotations

import argparse
import json
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
from scoring.subjects import load_subject
load_subject({model!r}, directory={directory!r})
print(time.perf_counter() - start)
"""


def timed_load_in_new_process(model: str, directory: Path) -> float:
    """Seconds for import + load_subject in a fresh interpreter (what a new session pays)."""
    code = LOAD_SNIPPET.format(model=model, directory=str(directory))
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    from scoring import configure_process

    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--directory", default=None, help="subjects folder to reuse (default: a fresh temp folder)")
    parser.add_argument("--max-windows", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="capture is measured with 1 and this many threads")
    parser.add_argument("--index-threads", type=int, default=1, help="threads for indexing and records (default 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from scoring import subjects

    scratch = None
    if args.directory is None:
        scratch = tempfile.TemporaryDirectory(prefix="bench-subjects-")
        directory = Path(scratch.name)
    else:
        directory = Path(args.directory)
    figures: dict[str, float | int | str] = {"model": args.model}

    already = (directory / args.model / "model" / "config.json").exists()
    figures["first_load_seconds" if not already else "load_seconds_existing_copy"] = timed_load_in_new_process(
        args.model, directory
    )
    figures["cached_load_seconds"] = timed_load_in_new_process(args.model, directory)
    subject = subjects.load_subject(args.model, directory=directory)

    corpus = subjects.default_corpus()
    windows = subjects.chunk_corpus(subject, corpus, subjects.WINDOW_TOKENS, args.max_windows)
    batch = np.asarray([subject.with_bos(row.tolist()) for row in windows.token_ids[:8]])
    all_layers = list(range(subject.n_layers))
    for threads in sorted({1, args.threads}):
        subject.threads = threads
        subject.capture_kinds(batch[:1], all_layers)  # warm-up
        repeats = 3
        start = time.perf_counter()
        for _ in range(repeats):
            subject.capture_kinds(batch[:1], all_layers)
        elapsed = time.perf_counter() - start
        figures[f"capture_one_window_tokens_per_second_{threads}_threads"] = repeats * batch.shape[1] / elapsed
        start = time.perf_counter()
        subject.capture_kinds(batch, all_layers)
        elapsed = time.perf_counter() - start
        figures[f"capture_batch8_tokens_per_second_{threads}_threads"] = batch.size / elapsed
    subject.threads = args.index_threads

    index_scratch = tempfile.TemporaryDirectory(prefix="bench-index-")
    steps: list[float] = []
    start = time.perf_counter()
    index = subjects.build_index(
        subject,
        corpus,
        Path(index_scratch.name) / "index",
        max_windows=args.max_windows,
        progress=lambda done, total, message: steps.append(time.perf_counter()),
    )
    figures["index_seconds"] = time.perf_counter() - start
    figures["index_windows"] = index.n_windows
    figures["index_threads"] = args.index_threads
    figures["index_tokens_per_second"] = index.n_windows * subjects.WINDOW_TOKENS / figures["index_seconds"]

    rng = np.random.default_rng(0)
    neurons = [int(n) for n in rng.choice(subject.widths["mlp"], size=5, replace=False)]
    start = time.perf_counter()
    reopened = subjects.read_index(index.directory)
    figures["index_open_ms"] = 1000 * (time.perf_counter() - start)
    start = time.perf_counter()
    for neuron in neurons:
        reopened.ranked_windows(6, neuron)[:20]
    figures["top20_windows_from_index_ms"] = 1000 * (time.perf_counter() - start) / len(neurons)
    start = time.perf_counter()
    for neuron in neurons:
        reopened.records(subject, 6, neuron, top=20, random=10)
    figures["records_top20_random10_layer6_seconds"] = (time.perf_counter() - start) / len(neurons)

    index_scratch.cleanup()
    if scratch is not None:
        scratch.cleanup()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:<50} {value:.3f}" if isinstance(value, float) else f"{name:<50} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
