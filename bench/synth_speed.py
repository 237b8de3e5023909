"""How fast `synthesize` writes papers: 100k papers to /dev/null, papers per second.

Run by hand from the repository root: `.venv/bin/python bench/synth_speed.py [COUNT] [SEED]`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from service.ingest.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds" / "daily-papers-mar-11.txt"


def main() -> None:
    """Time one run and print the figures."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with open(os.devnull, "w", encoding="utf-8") as out:
        started, cpu_started = time.perf_counter(), time.process_time()
        written = synthesize(count, seed, SEEDS, out)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"synth: {written:,} papers (seed {seed}) to /dev/null")
    print(f"  wall {elapsed:.2f} s = {written / elapsed:,.0f} papers/s")
    print(f"  cpu  {cpu:.2f} s = {written / cpu:,.0f} papers/s")


if __name__ == "__main__":
    main()
