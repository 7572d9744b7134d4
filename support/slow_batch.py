"""Run `run_batch` with a deliberately slow counting simulator, for interruption tests.

    python support/slow_batch.py INPUT OUTPUT DELAY_SECONDS CONCURRENCY

Prints one JSON line on stdout: the batch summary and how many `simulate` calls
and sequences the simulator saw.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.batch import run_batch  # noqa: E402
from scoring.simulators.base import Capabilities, SimulationBatch  # noqa: E402
from scoring.simulators.fake import FakeSimulator  # noqa: E402


class SlowFakeSimulator(FakeSimulator):
    """The `fake` simulator's predictions, each call taking `delay` seconds."""

    capabilities = Capabilities(max_sequences_per_call=4, max_concurrency=16)

    def __init__(self, delay: float) -> None:
        super().__init__("match")
        self.delay = delay

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        await asyncio.sleep(self.delay)
        return await super().simulate(explanation, sequences)


def main(argv: Sequence[str]) -> int:
    input_path, output_path, delay, concurrency = argv
    simulator = SlowFakeSimulator(float(delay))
    summary = run_batch(
        input_path, output_path, simulator=simulator, concurrency=int(concurrency), progress=False
    )
    print(
        json.dumps({"summary": summary, "calls": simulator.calls, "sequences": simulator.sequences_simulated})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
