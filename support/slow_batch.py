"""Run `run_batch` with a deliberately slow counting simulator, for interruption tests.

    python support/slow_batch.py INPUT OUTPUT DELAY_SECONDS CONCURRENCY [HOLD_AT_LINES]

Prints one JSON line on stdout: the batch summary and how many `simulate` calls
and sequences the simulator saw. With HOLD_AT_LINES, every call made once OUTPUT
holds that many lines waits a minute first, so an interruption sent when the
lines appear lands mid-run however slowly the machine runs the test.
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

    def __init__(self, delay: float, output: Path | None = None, hold_at: int | None = None) -> None:
        super().__init__("match")
        self.delay = delay
        self.output = output
        self.hold_at = hold_at

    def holding(self) -> bool:
        if self.output is None or self.hold_at is None or not self.output.exists():
            return False
        return len(self.output.read_text(encoding="utf-8").splitlines()) >= self.hold_at

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        await asyncio.sleep(60.0 if self.holding() else self.delay)
        return await super().simulate(explanation, sequences)


def main(argv: Sequence[str]) -> int:
    input_path, output_path, delay, concurrency, *hold = argv
    simulator = SlowFakeSimulator(float(delay), Path(output_path), int(hold[0]) if hold else None)
    summary = run_batch(
        input_path, output_path, simulator=simulator, concurrency=int(concurrency), progress=False
    )
    print(
        json.dumps({"summary": summary, "calls": simulator.calls, "sequences": simulator.sequences_simulated})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
