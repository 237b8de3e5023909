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
        started = time.perf_counter()
        written = synthesize(count, seed, SEEDS, out)
        elapsed = time.perf_counter() - started
    print(f"synth: {written} papers in {elapsed:.2f} s = {written / elapsed:,.0f} papers/s (seed {seed})")


if __name__ == "__main__":
    main()
