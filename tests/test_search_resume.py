"""Interrupt a search (SIGTERM in-process; SIGKILL of a real ``simplifier search`` process at a
random moment); the resumed search equals the uninterrupted one (history.jsonl up to its
wall-clock field, and the best program)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simplifier.search import search
from simplifier.search.engine import load_state

CONFIG = {
    "budget": "tiny",
    "evaluations": 16,
    "population": 4,
    "round_size": 2,
    "checkpoint_every": 2,
    "seed": 7,
    "meta_top": 1,
}
ARGS = [
    "--budget", "tiny", "--evaluations", "16", "--population", "4", "--round-size", "2",
    "--checkpoint-every", "2", "--seed", "7", "--meta-top", "1", "--no-plots",
]  # fmt: skip


def lines(out: Path) -> list[dict]:
    records = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("seconds")
    return records


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "simplifier", "search", "--quiet", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    """Until ``path`` has ``n`` lines (or the process ended)."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.01)


def test_sigterm_saves_the_state_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """In-process: SIGTERM after a round -> state saved, KeyboardInterrupt; resume -> same."""
    search(**CONFIG, out=tmp_path / "ref", plots=False)
    out = tmp_path / "term"
    rounds = []

    def progress(state: object) -> None:
        rounds.append(state)
        if len(rounds) == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        search(**CONFIG, out=out, plots=False, progress=progress)
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are restored
    saved = load_state(out)
    assert saved.phase == "search" and saved.rounds == 3
    search(**CONFIG, out=out, plots=False, resume=True)
    assert lines(out) == lines(tmp_path / "ref")


def test_sigkill_at_a_random_moment_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    reference = search(**CONFIG, out=tmp_path / "ref", plots=False)
    total = len(lines(tmp_path / "ref"))
    rng = random.Random()
    out = tmp_path / "killed"
    # A random moment: when the history has reached a random length, plus up to 50 ms.
    at = rng.randrange(2, total - 1)
    proc = start([*ARGS, "--out", str(out)])
    wait_for_lines(out / "history.jsonl", at, proc)
    time.sleep(rng.uniform(0.0, 0.05))
    proc.kill()
    proc.communicate(timeout=60)
    assert load_state(out).phase != "done", "killed after the end: the test tested nothing"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simplifier",
            "search",
            "--quiet",
            "--no-plots",
            "--resume",
            str(out),
        ],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert lines(out) == lines(tmp_path / "ref"), f"killed at {at} lines"
    assert (out / "best.py").read_text() == (tmp_path / "ref" / "best.py").read_text()
    data = json.loads((out / "search.json").read_text())
    assert data["best_id"] == reference.best_id and data["evaluations"] == reference.evaluations
