"""No hidden global state: time budgets work in any thread without signals, caches are owned
and bounded, torch's process settings are restored after the work that needs them."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from simplifier.ablation.engine import TaskCache, cpu_settings, flushes_denormals
from simplifier.analysis import hashing
from simplifier.analysis.hashing import DigestCache, structural_hash
from simplifier.parse import parse
from simplifier.symbolic.translate import SymbolicTimeout, time_budget


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _interrupted(budget: float, work: float = 5.0) -> float:
    """Seconds until a busy loop of ``work`` seconds under ``budget`` is interrupted."""
    start = time.perf_counter()
    with pytest.raises(SymbolicTimeout, match=f"exceeded {budget:g} s"), time_budget(budget):
        _spin(work)
    return time.perf_counter() - start


def test_budget_interrupts_the_main_thread_without_an_alarm() -> None:
    assert threading.current_thread() is threading.main_thread()
    with time_budget(5.0):
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no SIGALRM timer
    assert _interrupted(0.05) < 2.0


def test_budget_interrupts_a_worker_thread() -> None:
    with ThreadPoolExecutor(2) as pool:
        times = list(pool.map(_interrupted, [0.05, 0.1]))
    assert all(t < 2.0 for t in times)


def test_a_block_that_ends_in_time_is_not_interrupted_later() -> None:
    with time_budget(0.05):
        pass
    _spin(0.2)  # past the budget: nothing may be raised here
    with time_budget(10.0):
        _spin(0.01)


def test_budgets_nest() -> None:
    with pytest.raises(SymbolicTimeout), time_budget(0.05):
        with time_budget(10.0):
            _spin(5.0)
    with pytest.raises(SymbolicTimeout), time_budget(10.0):
        with time_budget(0.05):
            _spin(5.0)
        pytest.fail("the inner budget's timeout propagates")


def test_a_swallowed_timeout_is_raised_again() -> None:
    start = time.perf_counter()
    with pytest.raises(SymbolicTimeout), time_budget(0.05):
        try:
            _spin(5.0)
        except Exception:  # the first interruption is swallowed, as a broad except in SymPy would
            pass
        _spin(5.0)  # the work goes on: interrupted again
    assert time.perf_counter() - start < 3.0


# -- caches ---------------------------------------------------------------------------------------
PROGRAM = "def f(w, g, m, lr, beta=0.9):\n  m = interp(g, m, beta)\n  return sign(m) * lr, m\n"


def test_hashing_keeps_no_process_wide_table() -> None:
    sizes = {k: len(v) for k, v in vars(hashing).items() if isinstance(v, dict)}
    structural_hash(parse(PROGRAM))
    assert sizes == {k: len(v) for k, v in vars(hashing).items() if isinstance(v, dict)}


def test_a_shared_digest_cache_gives_the_same_hash_and_stays_bounded() -> None:
    cache = DigestCache(limit=3)
    texts = [PROGRAM, PROGRAM.replace("0.9", "0.5"), "def f(w, g):\n  return exp(abs(g)) * 2\n"]
    for text in texts * 2:
        assert structural_hash(parse(text), cache=cache) == structural_hash(parse(text))
        assert len(cache.nodes) <= 4 and len(cache.consts) <= 4
    cache.clear()
    assert not cache.nodes and not cache.consts and not cache.inputs


def test_task_cache_is_bounded_and_deterministic() -> None:
    from simplifier.ablation.tasks import get_task

    cache = TaskCache(get_task("mlp"), max_init=2)
    first = cache.get_init(0)
    for seed in (1, 2, 3):
        cache.get_init(seed)
    assert len(cache.init) == 2 and 0 not in cache.init
    assert torch.equal(cache.get_init(0), first)


# -- torch settings -------------------------------------------------------------------------------
@pytest.mark.parametrize("flush_before", [False, True])
def test_cpu_settings_are_restored(flush_before: bool) -> None:
    threads = torch.get_num_threads()
    torch.set_flush_denormal(flush_before)
    try:
        assert flushes_denormals() is flush_before
        with pytest.raises(RuntimeError), cpu_settings(1, flush_denormal=not flush_before):
            assert torch.get_num_threads() == 1
            assert flushes_denormals() is not flush_before
            raise RuntimeError("the work fails")
        assert torch.get_num_threads() == threads
        assert flushes_denormals() is flush_before
    finally:
        torch.set_flush_denormal(False)
