"""Each classic corpus program against its real implementation, over 50 training steps.

The program runs in :func:`simplifier.numeric.run` with ``apply_updates=True`` (the paper's loop,
``w = w - update``) on the built-in two-tensor least-squares :class:`~simplifier.numeric.Problem`,
with an lr schedule (cosine decay) fed through the ``lr`` input. The reference trains the same
problem from the same initial weights with the same schedule: torch.optim's own class where
torch has one (float64), the published update rule written out directly otherwise. After every
step the weights, the update (``w_before - w_after`` for the reference) and, for torch classes,
the optimizer's state tensors must agree to a relative error below 1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from emit_support import group_lr, signature

from simplifier.emit import compile_torch
from simplifier.ir import Program
from simplifier.numeric import NUMPY, Backend, Problem, run, torch_backend
from simplifier.parse import parse, parse_file

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
STEPS = 50
TOLERANCE = 1e-10
PROBLEM = Problem(seed=7)

Arrays = list[np.ndarray]
# A published rule: (weights, grads, state, lr, 1-based step) -> new weights; updates `state`.
Rule = Callable[[Arrays, Arrays, dict[str, Arrays], float, int], Arrays]


def schedule(peak: float) -> Callable[[int], float]:
    """Cosine decay from ``peak`` to 10% of it: the lr input changes every step."""
    return lambda t: peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / STEPS)))


@dataclass
class History:
    """Per step: the weights after the step, the update, and named state tensors."""

    weights: list[Arrays] = field(default_factory=list)
    updates: list[Arrays] = field(default_factory=list)
    states: list[dict[str, Arrays]] = field(default_factory=list)


def _np(xs: Any) -> Arrays:
    """Copies as float64 arrays (a torch optimizer updates its tensors in place)."""
    return [
        np.array(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
        for x in xs
    ]


def run_program(program: Program, peak: float, backend: Backend) -> History:
    trace = run(
        program,
        PROBLEM.init(),
        PROBLEM.gradient_fn(),
        schedule(peak),
        STEPS,
        backend=backend,
        apply_updates=True,
    )
    return History(
        weights=[_np(w) for w in trace.weights[1:]],
        updates=[_np(u) for u in trace.updates],
        states=[{k: _np(v) for k, v in s.items()} for s in trace.states],
    )


def run_torch(
    make: Callable[[list[torch.Tensor], float], torch.optim.Optimizer],
    peak: float,
    state_keys: dict[str, str],
    group_lr: Callable[[float], float] = float,
) -> History:
    """Train with a torch optimizer; ``state_keys`` maps program state names to torch's;
    ``group_lr`` gives the group's lr for the schedule's value (an emitted class may scale it).

    torch's scalar states (NAdam's ``mu_product``, step counts) take the default dtype: float64
    here, like everything else."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _run_torch(make, peak, state_keys, group_lr)
    finally:
        torch.set_default_dtype(previous)


def _run_torch(
    make: Callable[[list[torch.Tensor], float], torch.optim.Optimizer],
    peak: float,
    state_keys: dict[str, str],
    group_lr: Callable[[float], float],
) -> History:
    params = [torch.tensor(x, dtype=torch.float64) for x in PROBLEM.init()]
    lr = schedule(peak)
    opt = make(params, group_lr(lr(0)))
    grads = PROBLEM.gradient_fn()
    out = History()
    for t in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = group_lr(lr(t))
        before = [p.detach().clone() for p in params]
        for p, g in zip(params, grads(t, before), strict=True):
            p.grad = g.clone()
        opt.step()
        out.weights.append(_np(params))
        out.updates.append(_np([b - p.detach() for b, p in zip(before, params, strict=True)]))
        out.states.append(
            {
                ours: _np([opt.state[p][theirs] for p in params])
                for ours, theirs in state_keys.items()
            }
        )
    return out


def run_rule(rule: Rule, peak: float) -> History:
    """Train with a published rule written directly in NumPy."""
    weights = PROBLEM.init()
    lr = schedule(peak)
    grads = PROBLEM.gradient_fn()
    state: dict[str, Arrays] = {}
    out = History()
    for t in range(STEPS):
        new = rule(weights, grads(t, weights), state, lr(t), t + 1)
        out.updates.append([a - b for a, b in zip(weights, new, strict=True)])
        out.weights.append(new)
        weights = new
    return out


def rel_error(ours: Arrays, ref: Arrays) -> float:
    diff = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(ours, ref, strict=True)))
    size = math.sqrt(sum(float(np.sum(b * b)) for b in ref))
    return diff / max(size, 1e-300)


def assert_same(ours: History, ref: History) -> None:
    assert len(ours.weights) == len(ref.weights) == STEPS
    for t in range(STEPS):
        for what, a, b in (
            ("weights", ours.weights[t], ref.weights[t]),
            ("update", ours.updates[t], ref.updates[t]),
            *(
                (f"state {k}", ours.states[t][k], v)
                for k, v in (ref.states[t] if ref.states else {}).items()
            ),
        ):
            err = rel_error(a, b)
            assert err < TOLERANCE, f"step {t + 1}: {what} differ, relative error {err:.3g}"


# -- the published rules (for optimizers torch.optim does not have) ------------------------------
def _zeros(state: dict[str, Arrays], name: str, like: Arrays) -> Arrays:
    return state.setdefault(name, [np.zeros_like(x) for x in like])


def lion_rule(beta1: float = 0.9, beta2: float = 0.99, wd: float = 0.0) -> Rule:
    """The official Lion (google/automl lion/), reference/paper-programs.md."""

    def step(w: Arrays, g: Arrays, state: dict[str, Arrays], lr: float, t: int) -> Arrays:
        m = _zeros(state, "m", w)
        new = []
        for i in range(len(w)):
            c = beta1 * m[i] + (1 - beta1) * g[i]
            new.append(w[i] * (1 - lr * wd) - lr * np.sign(c))
            m[i] = beta2 * m[i] + (1 - beta2) * g[i]
        return new

    return step


def signum_rule(beta: float = 0.9) -> Rule:
    """Bernstein et al. 2018: m = beta m + (1 - beta) g; x = x - lr sign(m)."""

    def step(w: Arrays, g: Arrays, state: dict[str, Arrays], lr: float, t: int) -> Arrays:
        m = _zeros(state, "m", w)
        for i in range(len(w)):
            m[i] = beta * m[i] + (1 - beta) * g[i]
        return [w[i] - lr * np.sign(m[i]) for i in range(len(w))]

    return step


def sign_family_rule(kind: str, beta: float = 0.9, alpha: float = 1.0) -> Rule:
    """Bello et al. 2017: PowerSign exp(sign(g) sign(m)) g, AddSign (alpha + sign(g) sign(m)) g."""

    def step(w: Arrays, g: Arrays, state: dict[str, Arrays], lr: float, t: int) -> Arrays:
        m = _zeros(state, "m", w)
        new = []
        for i in range(len(w)):
            m[i] = beta * m[i] + (1 - beta) * g[i]
            agree = np.sign(g[i]) * np.sign(m[i])
            scale = np.exp(agree) if kind == "powersign" else alpha + agree
            new.append(w[i] - lr * scale * g[i])
        return new

    return step


def adabelief_rule(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-16) -> Rule:
    """Zhuang et al. 2020, Algorithm 2 (eps added to s every step, and to the root)."""

    def step(w: Arrays, g: Arrays, state: dict[str, Arrays], lr: float, t: int) -> Arrays:
        m, s = _zeros(state, "m", w), _zeros(state, "s", w)
        new = []
        for i in range(len(w)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            s[i] = beta2 * s[i] + (1 - beta2) * (g[i] - m[i]) ** 2 + eps
            m_hat = m[i] / (1 - beta1**t)
            s_hat = s[i] / (1 - beta2**t)
            new.append(w[i] - lr * m_hat / (np.sqrt(s_hat) + eps))
        return new

    return step


def yogi_rule(
    beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-3, v0: float = 1e-6
) -> Rule:
    """Zaheer et al. 2018, Algorithm 2 (no bias correction), v starting at ``v0``."""

    def step(w: Arrays, g: Arrays, state: dict[str, Arrays], lr: float, t: int) -> Arrays:
        m = _zeros(state, "m", w)
        v = state.setdefault("v", [np.full_like(x, v0) for x in w])
        new = []
        for i in range(len(w)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            g2 = g[i] * g[i]
            v[i] = v[i] - (1 - beta2) * np.sign(v[i] - g2) * g2
            new.append(w[i] - lr * m[i] / (np.sqrt(v[i]) + eps))
        return new

    return step


def adabound_rule(
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    base_lr: float = 1e-3,
) -> Rule:
    """Luo et al. 2019, the authors' AdaBound.step (github.com/Luolc/AdaBound), in NumPy."""

    def step(w: Arrays, g: Arrays, state: dict[str, Arrays], lr: float, t: int) -> Arrays:
        m, v = _zeros(state, "m", w), _zeros(state, "v", w)
        new = []
        for i in range(len(w)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            denom = np.sqrt(v[i]) + eps
            step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            bound = final_lr * lr / base_lr
            lower, upper = bound * (1 - 1 / (gamma * t + 1)), bound * (1 + 1 / (gamma * t))
            new.append(w[i] - np.clip(step_size / denom, lower, upper) * m[i])
        return new

    return step


# -- the cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TorchCase:
    file: str
    peak: float
    make: Callable[[list[torch.Tensor], float], torch.optim.Optimizer]
    state_keys: dict[str, str] = field(default_factory=dict)
    values: dict[str, Fraction] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleCase:
    file: str
    peak: float
    rule: Rule
    values: dict[str, Fraction] = field(default_factory=dict)


TORCH_CASES = [
    TorchCase("sgd", 0.1, lambda ps, lr: torch.optim.SGD(ps, lr=lr, foreach=False)),
    TorchCase(
        "sgd_momentum",
        0.05,
        lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9, foreach=False),
        {"buf": "momentum_buffer"},
    ),
    TorchCase(
        "nesterov",
        0.05,
        lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9, nesterov=True, foreach=False),
        {"buf": "momentum_buffer"},
    ),
    TorchCase(
        "adam",
        0.01,
        lambda ps, lr: torch.optim.Adam(ps, lr=lr, foreach=False),
        {"m": "exp_avg", "v": "exp_avg_sq"},
    ),
    TorchCase(
        "adamw",
        0.01,
        lambda ps, lr: torch.optim.AdamW(ps, lr=lr, foreach=False),
        {"m": "exp_avg", "v": "exp_avg_sq"},
    ),
    # a larger decay than the default, so that the decoupled term matters
    TorchCase(
        "adamw",
        0.01,
        lambda ps, lr: torch.optim.AdamW(ps, lr=lr, weight_decay=0.5, foreach=False),
        {"m": "exp_avg", "v": "exp_avg_sq"},
        {"weight_decay": Fraction(1, 2)},
    ),
    TorchCase(
        "rmsprop",
        0.01,
        lambda ps, lr: torch.optim.RMSprop(ps, lr=lr, foreach=False),
        {"v": "square_avg"},
    ),
    TorchCase(
        "adagrad", 0.1, lambda ps, lr: torch.optim.Adagrad(ps, lr=lr, foreach=False), {"acc": "sum"}
    ),
]


# Optimizers the language expresses since issue 13 (comparisons, where, clamp, initial values).
TORCH_CASES += [
    TorchCase(
        "adamax",
        0.01,
        lambda ps, lr: torch.optim.Adamax(ps, lr=lr, foreach=False),
        {"m": "exp_avg", "u": "exp_inf"},
    ),
    TorchCase(
        "amsgrad",
        0.01,
        lambda ps, lr: torch.optim.Adam(ps, lr=lr, amsgrad=True, foreach=False),
        {"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq"},
    ),
    TorchCase(
        "nadam",
        0.01,
        lambda ps, lr: torch.optim.NAdam(ps, lr=lr, foreach=False),
        {"m": "exp_avg", "v": "exp_avg_sq"},
    ),
    TorchCase(
        "radam",
        0.01,
        lambda ps, lr: torch.optim.RAdam(ps, lr=lr, foreach=False),
        {"m": "exp_avg", "v": "exp_avg_sq"},
    ),
    TorchCase(
        "adadelta",
        1.0,
        lambda ps, lr: torch.optim.Adadelta(ps, lr=lr, foreach=False),
        {"square_avg": "square_avg", "acc_delta": "acc_delta"},
    ),
    # torch's Rprop reads lr once, as every step size's initial value (the program's 0.01)
    TorchCase(
        "rprop",
        0.01,
        lambda ps, lr: torch.optim.Rprop(ps, lr=lr, foreach=False),
        {"prev": "prev", "step_size": "step_size"},
    ),
]


def _lion_pytorch(wd: float) -> Callable[[list[torch.Tensor], float], torch.optim.Optimizer]:
    def make(ps: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        from lion_pytorch import Lion

        return Lion(ps, lr=lr, weight_decay=wd)

    return make


# lucidrains' lion-pytorch, the torch implementation Lion users know (not part of torch.optim)
TORCH_CASES += [
    TorchCase("lion", 1e-3, _lion_pytorch(0.0), {"m": "exp_avg"}),
    TorchCase("lion", 1e-3, _lion_pytorch(1.0), {"m": "exp_avg"}, {"weight_decay": Fraction(1)}),
]

RULE_CASES = [
    RuleCase("lion", 1e-3, lion_rule()),
    RuleCase("lion", 1e-3, lion_rule(wd=1.0), {"weight_decay": Fraction(1)}),
    RuleCase(
        "lion",
        1e-3,
        lion_rule(beta1=0.8, beta2=0.95, wd=0.3),
        {"beta1": Fraction(4, 5), "beta2": Fraction(19, 20), "weight_decay": Fraction(3, 10)},
    ),
    # the paper's Program 1 (Greek names, lambda = 0.01) is the official Lion rule
    RuleCase("program1_lion", 1e-3, lion_rule(wd=0.01)),
    RuleCase("signum", 1e-3, signum_rule()),
    RuleCase("powersign", 0.05, sign_family_rule("powersign")),
    RuleCase("addsign", 0.05, sign_family_rule("addsign")),
    RuleCase("adabelief", 0.01, adabelief_rule()),
    RuleCase("yogi", 0.01, yogi_rule()),
    RuleCase("adabound", 1e-3, adabound_rule()),
]

BACKENDS = {"numpy": NUMPY, "torch": torch_backend(torch.float64)}


def _case_id(case: TorchCase | RuleCase) -> str:
    return case.file + "".join(f"-{k}={float(v):g}" for k, v in case.values.items())


def _program(file: str, values: dict[str, Fraction]) -> Program:
    return parse_file(str(CORPUS / f"{file}.py"), values)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", TORCH_CASES, ids=_case_id)
def test_against_torch_optim(case: TorchCase, backend: str) -> None:
    ours = run_program(_program(case.file, case.values), case.peak, BACKENDS[backend])
    assert_same(ours, run_torch(case.make, case.peak, case.state_keys))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", RULE_CASES, ids=_case_id)
def test_against_published_rule(case: RuleCase, backend: str) -> None:
    ours = run_program(_program(case.file, case.values), case.peak, BACKENDS[backend])
    assert_same(ours, run_rule(case.rule, case.peak))


CLASSICS = [
    "sgd",
    "sgd_momentum",
    "nesterov",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adabelief",
    "signum",
    "powersign",
    "addsign",
    "lion",
    *("adamax", "amsgrad", "nadam", "radam", "adadelta", "rprop", "yogi", "adabound"),
]


def test_every_classic_has_a_reference() -> None:
    covered = {c.file for c in TORCH_CASES} | {c.file for c in RULE_CASES}
    assert set(CLASSICS) <= covered
    assert all((CORPUS / f"{name}.py").is_file() for name in CLASSICS)


def test_reference_detects_a_wrong_program() -> None:
    """The comparison is sharp: eps under the root instead of torch's placement is caught."""
    text = (CORPUS / "adam.py").read_text(encoding="utf-8")
    assert "(sqrt(v_hat) + eps)" in text
    wrong = parse(text.replace("(sqrt(v_hat) + eps)", "sqrt(v_hat + eps)"))
    ref = run_torch(
        lambda ps, lr: torch.optim.Adam(ps, lr=lr, foreach=False),
        0.01,
        {"m": "exp_avg", "v": "exp_avg_sq"},
    )
    with pytest.raises(AssertionError, match="step 1: weights differ"):
        assert_same(run_program(wrong, 0.01, NUMPY), ref)


@pytest.mark.parametrize("case", [*TORCH_CASES, *RULE_CASES], ids=_case_id)
def test_training_makes_progress(case: TorchCase | RuleCase) -> None:
    """The reference problem is a real one: every case lowers the loss over 50 steps."""
    final = run_program(_program(case.file, case.values), case.peak, NUMPY).weights[-1]
    assert PROBLEM.loss(final) < PROBLEM.loss(PROBLEM.init())


# -- the emitted optimizers against the same references ------------------------------------------
EMIT_PATHS: dict[str, dict[str, bool]] = {
    "single": {"foreach": False},
    "foreach": {"foreach": True},
    "flat": {"foreach": True, "flat": True},
}


@pytest.mark.parametrize("path", list(EMIT_PATHS))
@pytest.mark.parametrize("case", [*TORCH_CASES, *RULE_CASES], ids=_case_id)
def test_emitted_class_against_the_reference(case: TorchCase | RuleCase, path: str) -> None:
    """The torch.optim.Optimizer emitted for each corpus program, on each of its paths, trains
    like the reference (weights, updates, and for torch classes the state tensors, which the
    emitted class keeps under the program's state names)."""
    program = _program(case.file, case.values)
    cls = compile_torch(program)
    sig = signature(program)
    ours = run_torch(
        lambda ps, lr: cls(ps, lr=lr, **EMIT_PATHS[path]),  # type: ignore[call-arg]
        case.peak,
        {name: name for name in (case.state_keys if isinstance(case, TorchCase) else {})},
        lambda lr: group_lr(sig, lr),
    )
    if isinstance(case, TorchCase):
        ref = run_torch(case.make, case.peak, case.state_keys)
    else:
        ref = run_rule(case.rule, case.peak)
    assert_same(ours, ref)
