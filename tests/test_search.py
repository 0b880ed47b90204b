"""The search loop: determinism, cache reuse, failed children, baselines, files, CLI errors."""

from __future__ import annotations

import json
import math
import os
import pickle
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import simplifier
from simplifier.cli import main
from simplifier.executor import EvalRequest, EvalResult, LocalExecutor
from simplifier.search import make_config, search
from simplifier.search.engine import STATE, load_state

TINY = {"budget": "tiny", "evaluations": 6, "population": 4, "round_size": 3, "meta_top": 1}


def lines(out: Path) -> list[dict]:
    """history.jsonl without the wall-clock field."""
    records = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("seconds")
    return records


@dataclass
class Counting:
    """An executor that counts requests and can fail chosen ones (by request key)."""

    fail: set[str] = field(default_factory=set)
    calls: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    inner: LocalExecutor = field(default_factory=LocalExecutor)

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        self.calls.append(len(requests))
        self.keys += [r.key for r in requests]
        results = self.inner.evaluate(requests)
        return [
            EvalResult.failure(r, "injected failure") if r.key in self.fail else res
            for r, res in zip(requests, results, strict=True)
        ]

    def close(self) -> None:
        pass


def test_api_is_exported() -> None:
    assert simplifier.search is search


def test_deterministic_for_a_seed_and_the_files(tmp_path: Path) -> None:
    a = search(**TINY, out=tmp_path / "a", seed=1)
    b = search(**TINY, out=tmp_path / "b", seed=1, plots=False)
    search(**TINY, out=tmp_path / "c", seed=2, plots=False)
    assert lines(tmp_path / "a") == lines(tmp_path / "b") != lines(tmp_path / "c")
    assert a.best_id == b.best_id and a.best_fitness == b.best_fitness
    for name in (
        "search.json",
        "history.jsonl",
        "best.py",
        "best.simplified.py",
        "fitness.png",
        "cache.png",
        "meta.png",
        STATE,
    ):
        assert (tmp_path / "a" / name).is_file(), name
    data = json.loads((tmp_path / "a" / "search.json").read_text())
    for key in (
        "best",
        "best_simplified",
        "best_fitness",
        "best_meta",
        "evaluations",
        "generated",
        "cache_hit_rate",
        "redundant_fraction",
        "wall_s",
        "config",
    ):
        assert key in data, key
    assert data["evaluations"] == 6 and data["generated"] >= 6
    # best.py parses back into the reported best program
    assert (
        simplifier.to_text(simplifier.parse_file(str(tmp_path / "a" / "best.py"))) == data["best"]
    )
    assert data.get("verdict")


def test_output_files_keep_the_users_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        search(**TINY, out=tmp_path / "a", seed=1, plots=False)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a").iterdir()}
    assert modes and all(mode == 0o640 for mode in modes.values()), modes


def test_cache_reuse_and_one_batch_per_round(tmp_path: Path) -> None:
    ex = Counting()
    report = search(
        **{**TINY, "evaluations": 9}, out=tmp_path / "s", seed=4, executor=ex, plots=False
    )
    records = lines(tmp_path / "s")
    evaluated = {r["id"]: r for r in records if not r["cached"]}
    # Every training request is an evaluated line, a calibration (proxy, meta) or a meta score.
    metas = {r["hash"] for r in records if r["meta"] is not None}
    assert len(ex.keys) == len(evaluated) + 2 + len(metas)
    # Rounds: one executor call per round (3 misses each), after the two start-up calls.
    assert ex.calls[1:4] == [1, 3, 3]
    hits = [r for r in records if r["cached"]]
    assert report.cache_hit_rate == pytest.approx(len(hits) / (len(records) - 1))
    for r in hits:
        src = evaluated[r["same_as"]]
        assert r["fitness"] == src["fitness"]
        if r["source"] == "hash":
            assert r["hash"] == src["hash"]
        if r["source"] == "fingerprint":
            assert r["fingerprint"] == src["fingerprint"]


def test_cache_hits_by_hash_are_not_retrained(tmp_path: Path) -> None:
    # Constants-only search on a program with one constant in dead code after the first round:
    # many children repeat; each distinct hash is trained once.
    ex = Counting()
    search(**{**TINY, "evaluations": 12}, out=tmp_path / "s", seed=0, executor=ex, plots=False)
    records = lines(tmp_path / "s")
    trained = [r["hash"] for r in records if not r["cached"]]
    assert len(trained) == len(set(trained))


def test_failed_children_get_the_worst_fitness_and_stay_out(tmp_path: Path) -> None:
    ex = Counting(fail={str(k) for k in range(1, 40, 2)})
    report = search(**TINY, out=tmp_path / "s", seed=3, executor=ex, plots=False)
    records = lines(tmp_path / "s")
    failed = [r for r in records if r["failed"] == "injected failure"]
    assert failed and all(r["fitness"] is None for r in failed)
    state = load_state(tmp_path / "s")
    ids = {m.id for run in state.runs for m in run.population}
    assert not ids & {r["id"] for r in failed}
    all_failed = [r for r in records if r["failed"] is not None and not r["cached"]]
    assert state.runs[0].failed == len(all_failed) >= len(failed)
    assert math.isfinite(report.best_fitness)


def test_baselines_at_equal_evaluations(tmp_path: Path) -> None:
    report = search(**TINY, out=tmp_path / "s", seed=0, baselines=("hypers", "random"), plots=False)
    by_alg = {r.algorithm: r for r in report.runs}
    assert set(by_alg) == {"evolution", "hypers", "random"}
    assert {r.evaluations for r in report.runs} == {6}
    assert [c.algorithm for c in report.comparison] == ["evolution", "hypers", "random"]
    records = lines(tmp_path / "s")
    progs = {r["id"]: r for r in records}
    for r in records:
        if r["run"] and r["run"].startswith("hypers"):
            assert r["mutation"].startswith("constant")
            parent = progs[r["parent"]]
            strip = lambda t: "".join(ch for ch in t if not (ch.isdigit() or ch in ".-e"))  # noqa: E731
            assert strip(r["program"]) == strip(parent["program"])
        if r["run"] and r["run"].startswith("random"):
            assert r["parent"] is None and r["mutation"].startswith("random")
    data = json.loads((tmp_path / "s" / "search.json").read_text())
    assert [b["algorithm"] for b in data["baselines"]] == ["hypers", "random"]


def test_same_configuration_continues_and_another_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "s"
    first = search(**TINY, out=out, seed=5, plots=False)
    ex = Counting()
    again = search(
        **TINY, out=out, seed=5, executor=ex, plots=False
    )  # finished: only the report is rebuilt
    assert ex.calls == [] and again.best_id == first.best_id
    with pytest.raises(ValueError, match="another configuration"):
        search(**TINY, out=out, seed=6, plots=False)
    forced = search(**TINY, out=out, seed=6, force=True, plots=False)
    assert load_state(out).config == make_config(**TINY, seed=6).identity()
    assert forced.generated >= 6


def test_state_is_bounded_by_the_cache_size(tmp_path: Path) -> None:
    search(**{**TINY, "evaluations": 9}, out=tmp_path / "s", cache_size=2, plots=False)
    state = load_state(tmp_path / "s")
    assert len(state.cache.by_hash.table) <= 2 and len(state.cache.by_fingerprint.table) <= 2
    assert len(pickle.dumps(state)) < 200_000


# -- the CLI ---------------------------------------------------------------------------------
def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["search", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_runs_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    code, stdout, _ = run_cli(
        [
            "--budget",
            "tiny",
            "--evaluations",
            "3",
            "--population",
            "4",
            "--round-size",
            "3",
            "--out",
            str(out),
            "--json",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    data = json.loads(stdout)
    assert data["evaluations"] == 3 and data["config"]["budget"]["name"] == "tiny"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--warm-start", "{d}/missing.py"], "missing.py"),
        (["--warm-start", "{d}/bad.py"], "bad.py:2:"),
        (["--tournament", "9", "--population", "4"], "cannot exceed the population"),
        (["--resume", "{d}/nothing"], "no saved search"),
        (["--resume", "{d}", "--evaluations", "3"], "drop --evaluations"),
        (["--out", "{d}/taken"], "exists and is not a search"),
        (["--device", "tpu"], "unknown device"),
        (["--evaluations", "0"], "must be at least 1"),
    ],
)
def test_cli_errors_are_located_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "bad.py").write_text("def train(w, g, lr):\n  return g ** \n")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    args = [a.replace("{d}", str(tmp_path)) for a in argv]
    if "--resume" not in args:
        args += ["--budget", "tiny"] + ([] if "--out" in args else ["--out", str(tmp_path / "new")])
    try:
        code, _, err = run_cli(["--quiet", *args], capsys)
    except SystemExit as e:  # argparse
        code, err = int(e.code or 0), capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "new" / "search.json").exists()


def test_the_comparison_takes_the_spread_over_runs_or_one_runs_seed_error() -> None:
    from simplifier.search.engine import MetaScore
    from simplifier.search.report import RunSummary, compare

    def run(alg: str, meta: float, se: float) -> RunSummary:
        return RunSummary(alg, alg, 4, 5, 1, 0, 0, 1.0, 1, 1.0, MetaScore(meta, se, None), "")

    warm = MetaScore(1.0, 0.01, None)
    three = compare((run("e", 0.9, 0.01), run("e", 0.8, 0.01), run("e", 0.7, 0.01)), warm)[0]
    assert three.meta_mean == pytest.approx(0.8)
    assert three.meta_stderr == pytest.approx(0.1 / 3**0.5)
    assert three.vs_warm == pytest.approx(0.2 / math.hypot(0.1 / 3**0.5, 0.01))
    (one,) = compare((run("e", 0.9, 0.02),), warm)
    assert one.meta_stderr == 0.02  # not 0: one run's own error over its meta seeds
    assert one.vs_warm == pytest.approx(0.1 / math.hypot(0.02, 0.01))
    (lost,) = compare((run("e", 0.9, 0.01), run("e", math.inf, math.inf)), warm)
    assert math.isinf(lost.meta_stderr) and math.isnan(lost.vs_warm)
