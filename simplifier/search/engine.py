"""The search loop: batch-synchronous regularized evolution with abstract-execution pruning.

**Runs.** Every algorithm of the configuration gets ``restarts`` independent runs from the warm
start, each with its own random stream (seeded from ``seed``, the algorithm and the restart) and
its own budget of ``evaluations`` trained programs; cache hits are free. ``evolution`` and
``hypers`` start from a population of ``population`` copies of the warm start (AutoML-Zero's
initialisation: one evaluation, the rest cached); ``random`` has no population.

**Rounds.** Each round, every unfinished run proposes children until it has ``round_size`` (or
its remaining budget of) programs to evaluate: a parent by tournament (``tournament`` members
drawn uniformly with replacement, the lowest loss wins), a child by
:meth:`~simplifier.search.mutate.Mutator.propose` (valid by construction, hash distinct from
the parent), its dead code pruned (:func:`simplifier.passes.dce.prune`, counted), and a cache
lookup by structural hash, then by numeric fingerprint, then among the round's earlier
children. All misses of all runs are trained in **one** :meth:`Executor.evaluate
<simplifier.executor.Executor.evaluate>` call; then the children are inserted in proposal
order, each removing the oldest member (regularized evolution). A child whose training failed
(an exception, NaN/inf at every multiplier, the time limit) gets the worst fitness (``inf``)
and stays out of the population. A run whose best has not improved for ``stagnation``
evaluations restarts its population from copies of its best program.

**Fitness** is the proxy task's validation loss at the best of the budget's small lr-multiplier
grid around the centre calibrated once on the warm start (over powers of 4, as the ablation
does), averaged over the proxy seeds (:func:`simplifier.ablation.ablate.score`).

**Funnel.** At the end the ``meta_top`` best distinct programs of every run (and, for the
meta-overfitting plot, a few of each evolution run's best-so-far programs) are trained on the
meta-validation task (``{task}-large``, a 2x wider model, longer training) around the centre
calibrated there on the warm start; each run's final pick is its best by meta score.

**State.** :class:`SearchState` is the whole search (populations, cache, random states,
counters); it changes only between rounds, is pickled atomically to ``state.pkl`` every
``checkpoint_every`` evaluations and when the process gets SIGINT/SIGTERM, and a resumed search
truncates ``history.jsonl`` to the size the state recorded. The search is deterministic for a
configuration, so a search killed at any moment and resumed writes the same history (up to the
``seconds`` field, a wall-clock time) and finds the same best program.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simplifier.ablation.tasks import Budget
from simplifier.analysis.fingerprint import fingerprint
from simplifier.executor import EvalRequest, EvalResult, Executor
from simplifier.files import create_temp, write_atomic
from simplifier.passes.dce import prune
from simplifier.printer import to_text

from .cache import Entry, FitnessCache
from .config import SearchConfig
from .mutate import Genome, Mutator, Proposal

STATE = "state.pkl"
HISTORY = "history.jsonl"
TRAJECTORY_SAMPLES = 3  # best-so-far programs per evolution run, meta-validated for meta.png


class Interrupted(BaseException):
    """SIGINT/SIGTERM during a search (a BaseException: an executor must not swallow it)."""


@dataclass(frozen=True)
class Member:
    """An evaluated program: its id (its line in the history), genome and proxy fitness."""

    id: int
    genome: Genome
    fitness: float


@dataclass(frozen=True)
class Point:
    """A run's best-so-far improvement: at how many evaluations, and the program."""

    evaluations: int
    member: Member


@dataclass(frozen=True)
class RunState:
    algorithm: str
    index: int
    rng: Any  # random.Random.getstate()
    population: tuple[Member, ...]  # oldest first
    best: Member
    best_at: int
    top: tuple[Member, ...]  # the best distinct programs, best first
    trajectory: tuple[Point, ...]
    evaluations: int = 0
    generated: int = 0
    hits: int = 0
    failed: int = 0
    no_child: int = 0
    restarts: int = 0

    @property
    def label(self) -> str:
        return f"{self.algorithm}/{self.index}"


@dataclass(frozen=True)
class MetaScore:
    loss: float
    stderr: float
    multiplier: float | None
    reason: str | None = None


@dataclass
class SearchState:
    """Everything a search needs to continue (pickled as ``state.pkl``)."""

    config: dict[str, Any]
    centre: float
    warm: Member
    runs: tuple[RunState, ...]
    cache: FitnessCache
    next_id: int
    history_bytes: int
    rounds: int = 0
    statements: int = 0  # statements of the generated programs, and how many of them were dead
    redundant: int = 0
    phase: str = "search"  # then "meta", then "done"
    meta_centre: float | None = None
    meta: dict[str, MetaScore] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def evaluations(self) -> int:
        return sum(r.evaluations for r in self.runs)

    @property
    def generated(self) -> int:
        return sum(r.generated for r in self.runs)

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.runs)


@dataclass
class _Child:
    run: int
    id: int
    parent: int | None
    proposal: Proposal | None  # None: no valid child within the mutator's tries
    fingerprint: str | None
    source: str  # "evaluated", "hash", "fingerprint", "round"
    entry: Entry | None = None  # for hits
    request: int | None = None  # for misses
    same_as: int | None = None  # for "round": the earlier child of this round


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


# -- the search -------------------------------------------------------------------------------
class Search:
    """Runs (or resumes) one search in ``out``; ``progress`` is called after every round."""

    def __init__(
        self,
        config: SearchConfig,
        out: Path,
        executor: Executor,
        progress: Callable[[SearchState], None] | None = None,
    ) -> None:
        self.config = config
        self.out = out
        self.executor = executor
        self.progress = progress or (lambda state: None)
        b = config.budget
        self.proxy = Budget(
            f"search-{b.name}", b.proxy_steps, len(b.proxy_seeds), b.proxy_grid, b.calibration
        )
        self.meta_budget = Budget(
            f"meta-{b.name}", b.meta_steps, len(b.meta_seeds), b.meta_grid, b.calibration
        )
        self.mutators = {
            "evolution": Mutator(config.max_length),
            "hypers": Mutator(config.max_length, constants_only=True),
            "random": Mutator(config.max_length),
        }
        self._in_commit = False
        self._pending_signal = False

    # -- requests ---------------------------------------------------------------------------
    def _request(
        self,
        genome: Genome,
        key: int,
        multipliers: tuple[float, ...],
        meta: bool = False,
        calibration: bool = False,
    ) -> EvalRequest:
        c, b = self.config, self.config.budget
        seeds = b.meta_seeds if meta else b.proxy_seeds
        return EvalRequest(
            prune(genome.program),
            c.meta_task if meta else c.task,
            self.meta_budget if meta else self.proxy,
            seeds=seeds[:2] if calibration else seeds,  # two seeds suffice to rank a wide grid
            multipliers=multipliers,
            device=c.device,
            semantics=c.semantics,
            time_limit=c.time_limit,
            key=str(key),
        )

    def _fingerprint(self, genome: Genome) -> str | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fingerprint(genome.program, semantics=self.config.semantics)
        except Exception:  # a program the reference interpreter cannot run: no second key
            return None

    # -- start ------------------------------------------------------------------------------
    def start(self) -> SearchState:
        """Calibrate the lr grid on the warm start, evaluate it, and build the runs."""
        from simplifier.parse import parse

        c, b = self.config, self.config.budget
        warm = Genome.of(parse(c.warm_start, c.warm_start_path))
        (calibration,) = self.executor.evaluate(
            [self._request(warm, 0, b.calibration, calibration=True)]
        )
        if calibration.score is None:
            raise ValueError(
                f"{c.warm_start_path}: the warm start diverges at every lr multiplier of the "
                f"calibration grid on task {c.task!r} ({calibration.reason})"
            )
        centre = calibration.score.multiplier
        (result,) = self.executor.evaluate([self._request(warm, 0, self._grid(centre))])
        if result.score is None:
            raise ValueError(
                f"{c.warm_start_path}: the warm start fails at the lr grid ({result.reason})"
            )
        member = Member(0, warm, result.loss)
        cache = FitnessCache(c.cache_size)
        fp = self._fingerprint(warm)
        cache.put(warm.digest, fp, Entry(result.loss, result.score.multiplier, None, 0))
        runs = []
        for algorithm in c.algorithms:
            for k in range(c.restarts):
                rng = random.Random(f"{c.seed}/{algorithm}/{k}")
                population = (member,) * c.population if algorithm != "random" else ()
                runs.append(
                    RunState(
                        algorithm,
                        k,
                        rng.getstate(),
                        population,
                        member,
                        0,
                        (member,),
                        (Point(0, member),),
                    )
                )
        history = self.out / HISTORY
        line = self._line(
            None,
            0,
            None,
            "warm start",
            warm,
            fp,
            "evaluated",
            result.loss,
            result.score.multiplier,
            None,
            result.seconds,
        )
        history.write_text(line, encoding="utf-8")
        state = SearchState(
            c.identity(), centre, member, tuple(runs), cache, 1, history.stat().st_size
        )
        self.save(state)
        return state

    def _grid(self, centre: float, meta: bool = False) -> tuple[float, ...]:
        b = self.config.budget
        return tuple(centre * m for m in (b.meta_grid if meta else b.proxy_grid))

    # -- one round ----------------------------------------------------------------------------
    def _propose(
        self,
        state: SearchState,
        k: int,
        taken: dict[str, int],
        fps: dict[str, int],
        children: list[_Child],
        requests: list[EvalRequest],
        next_id: int,
    ) -> tuple[Any, int]:
        """Run ``k``'s children of this round (appended to ``children``); returns its new random
        state and the next free id."""
        c = self.config
        run = state.runs[k]
        rng = random.Random()
        rng.setstate(run.rng)
        mutator = self.mutators[run.algorithm]
        want = min(c.round_size, c.evaluations - run.evaluations)
        misses = 0
        draws = 0
        while misses < want and draws < 50 * want:
            draws += 1
            parent: int | None
            if run.algorithm == "random":
                n = 1 + int(rng.random() * c.random_mutations)
                proposal = mutator.random_program(state.warm.genome, rng, n)
                parent = None
            else:
                chosen = self._tournament(run.population, rng)
                proposal = mutator.propose(chosen.genome, rng)
                parent = chosen.id
            if proposal is None:
                children.append(_Child(k, -1, parent, None, None, "none"))
                continue
            digest = proposal.genome.digest
            child = _Child(k, next_id, parent, proposal, None, "evaluated")
            next_id += 1
            entry = state.cache.by_hash.table.get(digest)
            if entry is not None:
                child.source, child.entry = "hash", entry
            elif digest in taken:
                child.source, child.same_as = "round", taken[digest]
            else:
                child.fingerprint = self._fingerprint(proposal.genome)
                fp = child.fingerprint
                entry = state.cache.by_fingerprint.table.get(fp) if fp is not None else None
                if entry is not None:
                    child.source, child.entry = "fingerprint", entry
                elif fp is not None and fp in fps:
                    child.source, child.same_as = "round", fps[fp]
                else:
                    taken[digest] = child.id
                    if fp is not None:
                        fps[fp] = child.id
                    child.request = len(requests)
                    requests.append(
                        self._request(proposal.genome, child.id, self._grid(state.centre))
                    )
                    misses += 1
            children.append(child)
        return rng.getstate(), next_id

    def _tournament(self, population: tuple[Member, ...], rng: random.Random) -> Member:
        best: Member | None = None
        n = len(population)
        for _ in range(self.config.tournament):
            m = population[int(rng.random() * n)]
            if best is None or m.fitness < best.fitness:
                best = m
        assert best is not None
        return best

    def round(self, state: SearchState) -> SearchState:
        """Propose, evaluate (one executor call), commit."""
        start = time.perf_counter()
        c = self.config
        children: list[_Child] = []
        requests: list[EvalRequest] = []
        taken: dict[str, int] = {}
        fps: dict[str, int] = {}
        rngs = {}
        next_id = state.next_id
        for k, run in enumerate(state.runs):
            if run.evaluations < c.evaluations:
                rngs[k], next_id = self._propose(state, k, taken, fps, children, requests, next_id)
        results = self.executor.evaluate(requests) if requests else []
        wall = time.perf_counter() - start
        with self._commit_section():
            return self._commit(state, children, results, rngs, next_id, wall)

    def _commit(
        self,
        state: SearchState,
        children: list[_Child],
        results: list[EvalResult],
        rngs: dict[int, Any],
        next_id: int,
        wall: float,
    ) -> SearchState:
        c = self.config
        cache = state.cache
        by_id: dict[int, Entry] = {}
        lines: list[str] = []
        runs = list(state.runs)
        statements, redundant = state.statements, state.redundant
        for child in children:
            run = runs[child.run]
            if child.proposal is None:
                runs[child.run] = replace(run, no_child=run.no_child + 1)
                continue
            genome = child.proposal.genome
            seconds = 0.0
            if child.request is not None:
                res = results[child.request]
                mult = res.score.multiplier if res.score is not None else None
                entry = Entry(res.loss, mult, res.reason, child.id)
                cache.put(genome.digest, child.fingerprint, entry)
                seconds = res.seconds
            elif child.source == "round":
                assert child.same_as is not None
                entry = by_id[child.same_as]
                cache.get(genome.digest, child.fingerprint)
            else:
                assert child.entry is not None
                entry = child.entry
                cache.get(genome.digest, child.fingerprint)
            by_id[child.id] = entry
            n_redundant = genome.redundant
            statements += len(genome.program.body)
            redundant += n_redundant
            lines.append(
                self._line(
                    run.label,
                    child.id,
                    child.parent,
                    child.proposal.mutation,
                    genome,
                    child.fingerprint,
                    child.source,
                    entry.fitness,
                    entry.multiplier,
                    entry.reason,
                    seconds,
                    n_redundant,
                    same_as=None if child.source == "evaluated" else entry.id,
                )
            )
            runs[child.run] = self._insert(
                run,
                Member(child.id, genome, entry.fitness),
                child.source == "evaluated",
                entry.reason is not None,
            )
        for k, rng in rngs.items():
            run = replace(runs[k], rng=rng)
            if (
                c.stagnation
                and run.algorithm != "random"
                and run.evaluations - run.best_at >= c.stagnation
            ):
                run = replace(
                    run,
                    population=(run.best,) * c.population,
                    best_at=run.evaluations,
                    restarts=run.restarts + 1,
                )
            runs[k] = run
        history = self.out / HISTORY
        with history.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
        new = replace(
            state,
            runs=tuple(runs),
            next_id=next_id,
            history_bytes=history.stat().st_size,
            rounds=state.rounds + 1,
            statements=statements,
            redundant=redundant,
            seconds=state.seconds + wall,
        )
        every = c.checkpoint_every
        if new.evaluations // every != state.evaluations // every or all(
            r.evaluations >= c.evaluations for r in new.runs
        ):
            self.save(new)
        return new

    def _insert(self, run: RunState, m: Member, evaluated: bool, failed: bool) -> RunState:
        c = self.config
        changes: dict[str, Any] = {
            "generated": run.generated + 1,
            "evaluations": run.evaluations + (1 if evaluated else 0),
            "hits": run.hits + (0 if evaluated else 1),
            "failed": run.failed + (1 if failed and evaluated else 0),
        }
        if not math.isfinite(m.fitness):
            return replace(run, **changes)  # the worst fitness: kept out of the population
        if run.algorithm != "random":
            population = (*run.population, m)
            changes["population"] = population[-c.population :]
        if m.fitness < run.best.fitness:
            changes["best"] = m
            changes["best_at"] = changes["evaluations"]
            changes["trajectory"] = (*run.trajectory, Point(changes["evaluations"], m))
        if all(t.genome.digest != m.genome.digest for t in run.top):
            top = sorted((*run.top, m), key=lambda t: (t.fitness, t.id))
            changes["top"] = tuple(top[: c.meta_top])
        return replace(run, **changes)

    def _line(
        self,
        run: str | None,
        id: int,
        parent: int | None,
        mutation: str,
        genome: Genome,
        fp: str | None,
        source: str,
        fitness: float,
        multiplier: float | None,
        reason: str | None,
        seconds: float,
        redundant: int = 0,
        same_as: int | None = None,
    ) -> str:
        record = {
            "id": id,
            "run": run,
            "parent": parent,
            "mutation": mutation,
            "hash": genome.digest,
            "fingerprint": fp,
            "cached": source != "evaluated",
            "source": source,
            "same_as": same_as,
            "fitness": _num(fitness),
            "multiplier": multiplier,
            "failed": reason,
            "meta": None,
            "statements": len(genome.program.body),
            "redundant": redundant,
            "seconds": round(seconds, 4),
            "program": to_text(genome.program),
        }
        return json.dumps(record) + "\n"

    # -- meta-validation --------------------------------------------------------------------
    def candidates(self, state: SearchState) -> list[Member]:
        """The programs the funnel re-evaluates: every run's top, the best-so-far samples of
        the evolution runs, and the warm start (distinct by structural hash)."""
        found: dict[str, Member] = {state.warm.genome.digest: state.warm}
        for run in state.runs:
            for m in run.top:
                found.setdefault(m.genome.digest, m)
            if run.algorithm == "evolution":
                for p in sample_trajectory(run.trajectory):
                    found.setdefault(p.member.genome.digest, p.member)
        return list(found.values())

    def meta(self, state: SearchState) -> SearchState:
        start = time.perf_counter()
        if state.meta_centre is None:
            (cal,) = self.executor.evaluate(
                [self._request(state.warm.genome, 0, self.config.budget.calibration, True, True)]
            )
            if cal.score is None:
                raise ValueError(
                    "the warm start diverges at every lr multiplier on "
                    f"{self.config.meta_task!r} ({cal.reason})"
                )
            state = replace(state, meta_centre=cal.score.multiplier)
            self.save(state)
        assert state.meta_centre is not None
        todo = [m for m in self.candidates(state) if m.genome.digest not in state.meta]
        grid = self._grid(state.meta_centre, meta=True)
        results = self.executor.evaluate(
            [self._request(m.genome, m.id, grid, meta=True) for m in todo]
        )
        meta = dict(state.meta)
        for m, res in zip(todo, results, strict=True):
            if res.score is None:
                meta[m.genome.digest] = MetaScore(math.inf, math.inf, None, res.reason)
            else:
                meta[m.genome.digest] = MetaScore(
                    res.score.loss, res.score.stderr, res.score.multiplier
                )
        state = replace(
            state, meta=meta, phase="done", seconds=state.seconds + time.perf_counter() - start
        )
        self._fill_history_meta(state)
        self.save(state)
        return state

    def _fill_history_meta(self, state: SearchState) -> None:
        """Rewrite ``history.jsonl`` with the meta score of every line whose program was
        meta-validated (atomically)."""
        path = self.out / HISTORY
        tmp, fd = create_temp(self.out, HISTORY)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as dst, path.open(encoding="utf-8") as src:
                for line in src:
                    record = json.loads(line)
                    found = state.meta.get(record["hash"])
                    if found is not None:
                        record["meta"] = _num(found.loss)
                        line = json.dumps(record) + "\n"
                    dst.write(line)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        state.history_bytes = path.stat().st_size

    # -- driving ----------------------------------------------------------------------------
    def run(self, state: SearchState | None) -> SearchState:
        """Start (or continue ``state``) until done; save on SIGINT/SIGTERM and re-raise."""
        committed = state
        with self._signals():
            try:
                if committed is None:
                    committed = self.start()
                while committed.phase == "search":
                    if all(r.evaluations >= self.config.evaluations for r in committed.runs):
                        committed = replace(committed, phase="meta")
                        self.save(committed)
                        break
                    committed = self.round(committed)
                    self.progress(committed)
                if committed.phase == "meta":
                    committed = self.meta(committed)
                    self.progress(committed)
            except Interrupted:
                if committed is not None:
                    self.save(committed)
                raise KeyboardInterrupt from None
        return committed

    def save(self, state: SearchState) -> None:
        write_atomic(self.out / STATE, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    @contextmanager
    def _commit_section(self) -> Iterator[None]:
        self._in_commit = True
        try:
            yield
        finally:
            self._in_commit = False
        if self._pending_signal:
            self._pending_signal = False
            raise Interrupted

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._in_commit:
                self._pending_signal = True
            else:
                raise Interrupted

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def sample_trajectory(points: tuple[Point, ...], n: int = TRAJECTORY_SAMPLES) -> list[Point]:
    """Up to ``n`` best-so-far points, evenly spaced along the trajectory, the last included.

    >>> [p.evaluations for p in sample_trajectory(tuple(Point(i, None) for i in range(10)), 3)]
    [0, 4, 9]
    """
    if len(points) <= n:
        return list(points)
    idx = sorted({round(i * (len(points) - 1) / (n - 1)) for i in range(n)})
    return [points[i] for i in idx]


def load_state(out: Path) -> SearchState:
    with (out / STATE).open("rb") as f:
        state = pickle.load(f)
    if not isinstance(state, SearchState):
        raise ValueError(f"{out / STATE} is not a search state")
    return state


def truncate_history(out: Path, state: SearchState) -> None:
    """Drop the history lines written after the state was saved (they are written again)."""
    path = out / HISTORY
    with path.open("r+b") as f:
        f.truncate(state.history_bytes)
