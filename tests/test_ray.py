"""The Ray executor: same answers as the local executor, bit for bit; killed workers retried.

One real local Ray instance (2 CPUs, a small object store, no dashboard) is shared by the whole
test run; the tests that need it skip only when Ray is not installed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simplifier.ablation import ablate
from simplifier.ablation.tasks import Budget
from simplifier.cli import main
from simplifier.distributed import TASK_NAME, RayExecutor, _probe, split
from simplifier.executor import EvalRequest, EvalResult, Executor, LocalExecutor, make_executor
from simplifier.parse import parse

TINY = Budget("tiny", steps=6, seeds=2, grid=(1.0,), calibration=(1.0,))
SLOW = Budget("slow", steps=500, seeds=2, grid=(1.0,), calibration=(1.0,))
SGD = parse("def sgd(w, g, lr):\n  return g * lr\n")
SIGN = parse("def signum(w, g, lr):\n  return sign(g) * lr * 0.01\n")
MOMENTUM = parse("def mom(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return m * lr, m\n")
WILD = parse("def wild(w, g, lr):\n  return exp(g) * 1e30\n")
# A hyper without a value: binding its inputs raises inside the training loop.
_BOUND = parse("def f(w, g, lr, beta=0.5):\n  return g * beta * lr\n")
UNBOUND = replace(_BOUND, params=tuple(replace(p, default=None) for p in _BOUND.params))


def req(p, key: str, budget: Budget = TINY, **kw) -> EvalRequest:  # type: ignore[no-untyped-def]
    kw.setdefault("multipliers", (0.05, 0.1))
    return EvalRequest(p, "mlp", budget, seeds=(0, 1), key=key, **kw)


def answers(results: Sequence[EvalResult]) -> list[tuple[object, ...]]:
    """Everything but the wall time."""
    return [(r.key, r.losses, r.score, r.reason, r.replica_steps) for r in results]


# -- the split rule (no Ray needed) ---------------------------------------------------------------
@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(1, 50)), min_size=1, max_size=12),
    st.integers(1, 8),
    st.integers(1, 400),
)
def test_split_is_contiguous_balanced_and_sized(
    shape: list[tuple[int, int]], parts: int, min_steps: int
) -> None:
    batch = [
        EvalRequest(SGD, "mlp", Budget("b", steps, 1, (1.0,), (1.0,)), (0,), (1.0,) * n, key=str(i))
        for i, (n, steps) in enumerate(shape)
    ]
    chunks = split(batch, parts, min_steps)
    assert [r for c in chunks for r in c] == batch
    weights = [r.replicas * r.budget.steps for r in batch]
    total = sum(weights)
    assert len(chunks) == max(1, min(parts, len(batch), total // min_steps))
    assert all(chunks)
    for c in chunks:
        assert sum(r.replicas * r.budget.steps for r in c) <= total / len(chunks) + max(weights)


def test_a_dead_cluster_address_is_refused_at_once() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _probe(f"127.0.0.1:{port}")  # something answers
    with pytest.raises(ConnectionError, match="no Ray cluster answers"):
        _probe(f"127.0.0.1:{port}", timeout=1.0)


# -- a shared Ray instance ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=80 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    yield
    ray.shutdown()


@pytest.fixture
def executor(ray_instance: None) -> Iterator[RayExecutor]:
    with RayExecutor(min_task_steps=1) as ex:  # split even tiny batches
        yield ex


def test_same_answers_as_the_local_executor_bit_for_bit(executor: RayExecutor) -> None:
    requests = [
        req(SGD, "a"),
        req(SIGN, "b"),
        req(WILD, "c"),  # diverges
        req(UNBOUND, "r"),  # raises: its batch is retried request by request, on the worker
        req(MOMENTUM, "d", multipliers=(0.05, 0.1, 0.2)),
        req(SGD, "e", semantics="hero"),  # another group
        req(SIGN, "f"),
        req(SIGN, "g", dtype="float64"),  # a third group
    ]
    local = LocalExecutor().evaluate(requests)
    remote = executor.evaluate(requests)
    assert answers(remote) == answers(local)
    assert [r.ok for r in remote] == [True, True, False, False, True, True, True, True]
    assert "ValueError" in (remote[3].reason or "")
    assert executor.tasks == 4  # the 6 float32 "math" requests in 2 tasks, one task per other group


def test_independent_batches_at_once_give_each_batch_its_answers(executor: RayExecutor) -> None:
    first = [req(SGD, "a"), req(SIGN, "b"), req(WILD, "c")]
    second = [req(MOMENTUM, "d"), req(SGD, "e", device="cuda")]  # no GPU: failed at once
    both = executor.evaluate_many([first, second])
    assert [answers(b) for b in both] == [answers(executor.evaluate(b)) for b in (first, second)]
    assert answers(both[0]) == answers(LocalExecutor().evaluate(first))


def test_the_ray_instance_is_shared_not_shut_down(ray_instance: None) -> None:
    import ray

    ex = make_executor("ray")
    assert isinstance(ex, RayExecutor) and isinstance(ex, Executor)
    ex.close()
    assert ray.is_initialized()
    with pytest.raises(ValueError, match="unknown options"):
        make_executor("ray", colour="red")


def test_a_cuda_request_on_a_cluster_without_gpus_fails_at_once(executor: RayExecutor) -> None:
    import ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray instance has a GPU")
    ok, cuda = executor.evaluate([req(SGD, "cpu"), req(SGD, "gpu", device="cuda")])
    assert ok.ok and not cuda.ok and "no GPU" in (cuda.reason or "")


# -- faults ---------------------------------------------------------------------------------------
def _our_task_workers() -> list[int]:
    """Pids of this test process's Ray workers (grandchildren, via the raylet) running a task."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            grand = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if title == f"ray::{TASK_NAME}".encode() and grand == me:
            found.append(int(entry.name))
    return found


def _evaluate_killing_one_worker(
    ex: RayExecutor, requests: list[EvalRequest]
) -> tuple[list[EvalResult], int]:
    """Evaluate in a thread; SIGKILL the first worker seen running a task, 0.2 s into it (a
    task of SLOW_REQUESTS trains for about a second)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("finding the worker's pid reads /proc (Linux)")
    out: list[list[EvalResult]] = []
    thread = threading.Thread(target=lambda: out.append(ex.evaluate(requests)))
    thread.start()
    deadline = time.monotonic() + 120
    while not (pids := _our_task_workers()):
        assert thread.is_alive() and time.monotonic() < deadline, "no task was seen running"
        time.sleep(0.02)
    time.sleep(0.2)
    assert pids[0] in _our_task_workers(), "the task ended before the kill"
    os.kill(pids[0], signal.SIGKILL)
    thread.join(timeout=300)
    assert out, "evaluate did not return"
    return out[0], pids[0]


SLOW_REQUESTS = [req(p, k, SLOW) for k, p in zip("abcd", (SGD, SIGN, MOMENTUM, SGD), strict=True)]


@pytest.fixture(scope="module")
def uninterrupted() -> list[EvalResult]:
    return LocalExecutor().evaluate(SLOW_REQUESTS)


def test_a_killed_worker_loses_nothing(
    executor: RayExecutor, uninterrupted: list[EvalResult]
) -> None:
    results, killed = _evaluate_killing_one_worker(executor, SLOW_REQUESTS)
    assert answers(results) == answers(uninterrupted)
    assert all(r.ok for r in results)
    assert killed not in _our_task_workers()


def test_a_task_out_of_retries_fails_its_requests_with_the_reason(
    ray_instance: None, uninterrupted: list[EvalResult]
) -> None:
    with RayExecutor(retries=0, min_task_steps=1) as ex:
        results, _ = _evaluate_killing_one_worker(ex, SLOW_REQUESTS)
    failed = [r.key for r in results if not r.ok]
    chunks = [[r.key for r in c] for c in split(SLOW_REQUESTS, 2, 1)]
    assert failed in chunks  # exactly the killed task's requests
    for r, ref in zip(results, uninterrupted, strict=True):
        if r.ok:
            assert answers([r]) == answers([ref])
        else:
            assert r.reason is not None and r.reason.startswith("Ray worker lost (1 attempt(s))")
            assert "WorkerCrashedError" in r.reason
            assert r.score is None and r.loss == math.inf


# -- the ablation on an executor -------------------------------------------------------------------
TOY = "def train(w, g, lr):\n  g = g + 0\n  u = -g\n  return -u * lr\n"
TOY_BUDGET = Budget("toy", steps=10, seeds=2, grid=(0.5, 1, 2), calibration=(0.25, 1, 4))


def test_ablation_on_an_executor_trains_the_same_batches() -> None:
    direct = ablate(parse(TOY), budget=TOY_BUDGET).as_json()
    via = ablate(parse(TOY), budget=TOY_BUDGET, executor=LocalExecutor()).as_json()
    for d in (direct, via):
        d.pop("seconds")
    assert via == direct


class _Lost:
    """An executor whose every batch was lost."""

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        return [EvalResult.failure(r, "Ray worker lost (3 attempt(s)): boom") for r in requests]

    def close(self) -> None:
        pass


def test_an_ablation_stops_on_a_batch_it_could_not_train() -> None:
    assert isinstance(_Lost(), Executor)
    with pytest.raises(RuntimeError, match="Ray worker lost"):
        ablate(parse(TOY), budget=TOY_BUDGET, executor=_Lost())


def test_ablate_backend_ray_gives_the_local_report(
    ray_instance: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "toy.py"
    src.write_text(TOY)
    argv = ["ablate", str(src), "--json", "--quiet", "--steps", "10", "--seeds", "2"]
    assert main(argv) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*argv, "--backend", "ray"]) == 0
    remote = json.loads(capsys.readouterr().out)
    for d in (local, remote):
        d.pop("seconds")
    assert remote == local
    assert main([*argv, "--address", "auto"]) == 2  # --address without --backend ray
    assert "--address needs --backend ray" in capsys.readouterr().err


# -- the search on --backend ray (runs once the search package is merged) --------------------------
def _history(out: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds", None)  # wall time
    return rows


def test_search_on_ray_writes_the_local_history_and_best(
    executor: RayExecutor, tmp_path: Path
) -> None:
    found = pytest.importorskip("simplifier.search", reason="the search package is not merged")
    kwargs = {"budget": "tiny", "evaluations": 24, "plots": False}
    found.search(out=tmp_path / "local", **kwargs)
    found.search(out=tmp_path / "ray", executor=executor, **kwargs)
    assert executor.tasks > 1  # the rounds were split into several tasks
    assert _history(tmp_path / "ray") == _history(tmp_path / "local")
    local, remote = (
        json.loads((tmp_path / d / "search.json").read_text()) for d in ("local", "ray")
    )
    assert (remote["best"], remote["best_fitness"]) == (local["best"], local["best_fitness"])


SEARCH_ARGS = [
    "search", "--budget", "tiny", "--evaluations", "12", "--population", "4", "--round-size",
    "3", "--checkpoint-every", "3", "--meta-top", "1", "--seed", "3", "--no-plots", "--quiet",
]  # fmt: skip


def test_search_backend_ray_on_the_command_line_equals_local(
    ray_instance: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SEARCH_ARGS, "--out", str(tmp_path / "local")]) == 0
    assert main([*SEARCH_ARGS, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    capsys.readouterr()
    assert _history(tmp_path / "ray") == _history(tmp_path / "local")
    local, remote = (
        json.loads((tmp_path / d / "search.json").read_text()) for d in ("local", "ray")
    )
    assert (remote["best"], remote["best_fitness"]) == (local["best"], local["best_fitness"])
    assert main([*SEARCH_ARGS, "--out", str(tmp_path / "x"), "--address", "auto"]) == 2
    assert "--address needs --backend ray" in capsys.readouterr().err


def test_a_search_interrupted_on_ray_resumes_on_ray_to_the_local_result(
    executor: RayExecutor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver stops mid-search (SIGTERM: state saved) and a new driver resumes on Ray."""
    from simplifier.search import search
    from simplifier.search.engine import load_state

    config = {"budget": "tiny", "evaluations": 12, "population": 4, "round_size": 3,
              "checkpoint_every": 3, "meta_top": 1, "seed": 3, "plots": False}  # fmt: skip
    search(**config, out=tmp_path / "local")  # type: ignore[arg-type]
    rounds: list[object] = []

    def progress(state: object) -> None:
        rounds.append(state)
        if len(rounds) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "ray"
    with pytest.raises(KeyboardInterrupt):
        search(**config, out=out, executor=executor, progress=progress)  # type: ignore[arg-type]
    assert load_state(out).phase == "search"
    assert main(["search", "--resume", str(out), "--backend", "ray", "--quiet", "--no-plots"]) == 0
    capsys.readouterr()
    assert _history(out) == _history(tmp_path / "local")
