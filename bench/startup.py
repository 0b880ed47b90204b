"""Benchmark: start-up time of the command line, against ``python -c pass`` (the anchor).

Each command runs as a fresh process, ``--repeat`` times; the table gives the median CPU time
(user + system, of the child process: less noisy than wall time on a shared machine), the median
wall time, and the CPU-time ratio to the anchor measured in the same run.

    python bench/startup.py [--repeat 15] [--tree PATH]

``--tree`` runs another checkout's ``simplifier`` (e.g. an older commit from ``git archive``) for
a before/after comparison in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c pass (anchor)": ["-c", "pass"],
    "simplifier --version": ["-m", "simplifier", "--version"],
    "simplifier check corpus/lion.py": ["-m", "simplifier", "check", "corpus/lion.py"],
}


def measure(args: list[str], tree: Path, repeat: int) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) of ``python ARGS`` run in ``tree``."""
    cpu, wall = [], []
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, check=True)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    args = parser.parse_args()
    trees = [("this tree", ROOT), *((str(t), t.resolve()) for t in args.tree)]
    print(f"{'tree':<22} {'command':<34} {'CPU ms':>8} {'wall ms':>8} {'x anchor':>9}")
    print("-" * 85)
    for label, tree in trees:
        anchor = None
        for name, cmd in COMMANDS.items():
            cpu, wall = measure(cmd, tree, args.repeat)
            anchor = anchor or cpu
            print(f"{label:<22} {name:<34} {1e3 * cpu:8.0f} {1e3 * wall:8.0f} {cpu / anchor:8.1f}x")
    print(f"median of {args.repeat} runs each; x anchor = CPU time / python -c pass's")


if __name__ == "__main__":
    main()
