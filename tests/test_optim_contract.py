"""The torch.optim contract, on every corpus program's emitted class and every path.

PyTorch's generic optimizer tests (``test/test_optim.py`` over ``common_optimizers.py``) and the
habits of training loops, run on each corpus program's class through its per-tensor
(``single``), ``foreach``, ``fused`` (compiled; Dynamo with the ``aot_eager`` backend, so
that no C++ is built) and ``flat`` paths; where torch.optim has the same optimizer (SGD,
momentum, Nesterov, Adam, AdamW, RMSprop, Adagrad) the same scenario runs on it too and the
weights must agree. The classes are compiled once for this module (fresh modules of their own,
set to ``aot_eager`` once) and shared by its tests, so each fused kernel compiles once.
"""

from __future__ import annotations

import copy
import functools
import inspect
import io
import math
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from emit_support import CORPUS, signature

from simplifier.emit import compile_torch
from simplifier.ops import OPS
from simplifier.parse import parse

TEXT = {f.stem: f.read_text(encoding="utf-8") for f in CORPUS}
NAMES = sorted(TEXT)
PATHS: dict[str, dict[str, object]] = {
    "single": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "flat": {"flat": True},
}
Factory = Callable[..., torch.optim.Optimizer]
# torch.optim's own optimizer for the corpus programs that mirror one, default-constructed.
TORCH: dict[str, Factory] = {
    "sgd": torch.optim.SGD,
    "sgd_momentum": functools.partial(torch.optim.SGD, momentum=0.9),
    "nesterov": functools.partial(torch.optim.SGD, momentum=0.9, nesterov=True),
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
SHAPES = ((4, 3), (5,), (2, 3, 2), ())  # a 0-dim parameter among them
STEPS = 4


@functools.cache
def klass(name: str) -> Any:  # an optimizer class (its keywords are the program's)
    """The corpus program's class, in a module of this test file's own: its fused path
    compiles with Dynamo and ``aot_eager``, and takes every parameter of two elements or more."""
    cls = compile_torch(parse(TEXT[name], f"corpus/{name}.py"))
    options = vars(sys.modules[cls.__module__])["COMPILE_OPTIONS"]
    options.pop("options", None)  # Inductor's
    options["backend"] = "aot_eager"
    cls.fused_min_numel = 0  # type: ignore[attr-defined]
    return cls


def make(name: str, path: str) -> Factory:
    return functools.partial(klass(name), **PATHS[path])


def elementwise(name: str) -> bool:
    """Whether the program only has element-wise ops (no reduction over a tensor, no clip)."""
    return all(OPS[s.op].elementwise for s in parse(TEXT[name]).body)


def params_of(dtype: torch.dtype = torch.float64, seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
        for s in SHAPES
    ]


def grads_for(params: list[torch.nn.Parameter], step: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for p in params]


def train(
    factory: Factory,
    params: list[torch.nn.Parameter],
    steps: int = STEPS,
    *,
    start: int = 0,
    opt: torch.optim.Optimizer | None = None,
    **kwargs: object,
) -> torch.optim.Optimizer:
    """``steps`` steps with the same gradients whatever the optimizer."""
    opt = opt if opt is not None else factory(params, **kwargs)
    for t in range(start, start + steps):
        for p, g in zip(params, grads_for(params, t), strict=True):
            p.grad = g
        opt.step()
    return opt


def assert_same(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], rtol: float = 1e-9) -> None:
    for x, y in zip(xs, ys, strict=True):
        torch.testing.assert_close(x.detach(), y.detach(), rtol=rtol, atol=rtol)


def against_torch(
    name: str,
    run: Callable[[Factory], list[torch.Tensor]],
    ours: list[torch.Tensor],
    rtol: float = 1e-9,
) -> None:
    """Where torch.optim has the program's optimizer, the same scenario gives the same weights."""
    if name in TORCH:
        assert_same(ours, run(TORCH[name]), rtol)


def trained(factory: Factory, steps: int) -> list[torch.Tensor]:
    """The weights after ``steps`` plain steps at lr 0.01 (the scenarios' reference)."""
    params = params_of()
    train(factory, params, steps, lr=0.01)
    return list(params)


# Every behaviour runs on every program and every path, the fused one included: each program's
# fused kernel compiles once for float64 parameters (seconds even with aot_eager; the float64
# tests share it, complex parameters included, as their float64 real views). The two tests that
# bring other kinds of parameter (float32, bfloat16: a kernel each) run the fused path on four
# programs that cover its machinery, which is the same for every program (the kernel cache by
# kind, the casts of states): a torch twin with step-dependent scalars, a program without
# step, one with a global reduction and a staged step, one without hypers but a state;
# test_emit.py traces every corpus program's float32 kernel against the reference interpreter.
FUSED_KINDS = ("adam", "lion", "program4", "sgd_momentum")
every = pytest.mark.parametrize(("name", "path"), [(n, p) for n in NAMES for p in sorted(PATHS)])
every_kind = pytest.mark.parametrize(
    ("name", "path"),
    [(n, p) for n in NAMES for p in sorted(PATHS) if p != "fused" or n in FUSED_KINDS],
)
corpus = pytest.mark.parametrize("name", NAMES)


def skip_flat(name: str, path: str) -> None:
    """flat=True refuses per-tensor reductions (none in the corpus: checked here)."""
    assert not (path == "flat" and "norm(" in TEXT[name].replace("global_norm(", ""))


# -- 1. defaults -------------------------------------------------------------------------------
@corpus
def test_defaults_are_the_programs_and_match_torch(name: str) -> None:
    """lr's default is the program's (required where it declares none); with every default, the
    class steps as torch.optim's default-constructed optimizer does."""
    cls = klass(name)
    sig = signature(parse(TEXT[name]))
    if sig.lr is None:
        with pytest.raises(TypeError, match="lr"):
            cls(params_of())
        return
    assert cls(params_of()).defaults["lr"] == pytest.approx(float(sig.lr))
    if name in TORCH:
        ours = params_of()
        train(cls, ours)
        theirs = params_of()
        train(TORCH[name], theirs)
        assert_same(ours, theirs)
        assert cls(params_of()).defaults["lr"] == TORCH[name](params_of()).defaults["lr"]


# -- the behaviours that already held ----------------------------------------------------------
@every
def test_no_gradients_no_step(name: str, path: str) -> None:
    params = params_of()
    before = [p.detach().clone() for p in params]
    opt = make(name, path)(params, lr=0.1)
    opt.step()
    assert_same(params, before, 0)
    assert not opt.state


@every
def test_closure_runs_under_grad_and_its_loss_is_returned(name: str, path: str) -> None:
    calls = []

    def run(factory: Factory) -> list[torch.Tensor]:
        params = params_of()
        opt = factory(params, lr=0.01)

        def closure() -> float:
            calls.append(torch.is_grad_enabled())
            opt.zero_grad()
            loss = sum((p * p).sum() for p in params)
            loss.backward()  # type: ignore[union-attr]
            return float(loss.detach())  # type: ignore[union-attr]

        loss = opt.step(closure)
        assert loss == pytest.approx(sum(float(p.detach().square().sum()) for p in params_of()))
        return list(params)

    ours = run(make(name, path))
    assert calls == [True]
    moved = [not torch.equal(p.detach(), q) for p, q in zip(ours, params_of(), strict=True)]
    assert any(moved)  # the step used the gradients the closure made
    against_torch(name, run, ours)


@every
def test_hooks(name: str, path: str) -> None:
    opt = make(name, path)(params_of(), lr=0.01)
    seen: list[str] = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    opt.register_state_dict_pre_hook(lambda o: seen.append("sd_pre"))
    opt.register_state_dict_post_hook(lambda o, sd: seen.append("sd_post"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: seen.append("load_pre"))
    opt.register_load_state_dict_post_hook(lambda o: seen.append("load_post"))
    train(None, opt.param_groups[0]["params"], 1, opt=opt)  # type: ignore[arg-type]
    opt.load_state_dict(opt.state_dict())
    assert seen == ["pre", "post", "sd_pre", "sd_post", "load_pre", "load_post"]


def _save_load(obj: object, weights_only: bool = True) -> object:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=weights_only)


@every
def test_state_dict_resume_new_and_old_optimizer(name: str, path: str) -> None:
    """Resuming from a state_dict loaded with ``weights_only=True`` (into a new optimizer, and
    into the old one after more steps) gives the weights of an uninterrupted run."""
    skip_flat(name, path)
    factory = make(name, path)
    straight = params_of()
    train(factory, straight, 2 * STEPS, lr=0.01)
    params = params_of()
    opt = train(factory, params, STEPS, lr=0.01)
    saved = _save_load({"opt": opt.state_dict(), "w": [p.detach().clone() for p in params]})
    resumed = [torch.nn.Parameter(w.clone()) for w in saved["w"]]  # type: ignore[index]
    new = factory(resumed, lr=0.5)
    new.load_state_dict(copy.deepcopy(saved["opt"]))  # type: ignore[index]
    train(factory, resumed, STEPS, start=STEPS, opt=new)
    assert_same(resumed, straight, 0)
    train(factory, params, 2, start=STEPS, opt=opt)  # the old one, set back to the saved state
    with torch.no_grad():
        for p, w in zip(params, saved["w"], strict=True):  # type: ignore[index]
            p.copy_(w)
    opt.load_state_dict(saved["opt"])  # type: ignore[index]
    train(factory, params, STEPS, start=STEPS, opt=opt)
    assert_same(params, straight, 0)
    against_torch(name, lambda f: trained(f, 2 * STEPS), list(straight))


@every_kind
def test_state_dict_across_dtypes(name: str, path: str) -> None:
    """A state_dict of float64 parameters loads into float32 ones (states cast to the
    parameter's dtype, as torch.optim does) and the steps go on within float32 rounding."""

    def run(factory: Factory) -> list[torch.Tensor]:
        wide = params_of()
        opt = train(factory, wide, STEPS, lr=0.01)
        narrow = [torch.nn.Parameter(p.detach().float()) for p in wide]
        opt32 = factory(narrow, lr=0.01)
        opt32.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch.optim aliases "step"
        for state in opt32.state.values():
            tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
            assert all(v.dtype == torch.float32 for v in tensors)
        train(factory, narrow, 2, start=STEPS, opt=opt32)
        train(factory, wide, 2, start=STEPS, opt=opt)
        assert_same([p.double() for p in narrow], wide, 1e-4)
        return list(narrow)

    against_torch(name, run, run(make(name, path)), 1e-5)


@every
def test_deepcopy_is_an_independent_equal_optimizer(name: str, path: str) -> None:
    params = params_of()
    opt = train(make(name, path), params, 2, lr=0.01)
    twin = copy.deepcopy(opt)
    twin_params = twin.param_groups[0]["params"]
    assert all(p is not q for p, q in zip(params, twin_params, strict=True))
    train(None, params, 2, start=2, opt=opt)  # type: ignore[arg-type]
    train(None, twin_params, 2, start=2, opt=twin)  # type: ignore[arg-type]
    assert_same(twin_params, params, 0)
    against_torch(name, lambda f: trained(f, 4), list(twin_params))


@every
def test_zero_size_and_zero_dim_parameters(name: str, path: str) -> None:
    def run(factory: Factory) -> list[torch.Tensor]:
        params = [torch.nn.Parameter(torch.zeros(0, 3, dtype=torch.float64)), *params_of()]
        train(factory, params, lr=0.01)
        return params

    ours = run(make(name, path))
    assert ours[0].shape == (0, 3) and ours[-1].dim() == 0
    against_torch(name, run, ours)


@every_kind
def test_mixed_dtypes_in_one_group(name: str, path: str) -> None:
    """float32, float64 and bfloat16 parameters in one group: each steps as in a group of its
    own dtype."""
    factory = make(name, path)
    dtypes = [torch.float32, torch.float64, torch.bfloat16, torch.float64]

    def run(factory: Factory) -> list[torch.Tensor]:
        mixed = [
            torch.nn.Parameter(p.detach().to(d)) for p, d in zip(params_of(), dtypes, strict=True)
        ]
        train(factory, mixed, lr=0.01)
        return list(mixed)

    mixed = run(factory)
    if name in TORCH:  # torch.optim steps each dtype in its own precision too
        for ours, theirs, d in zip(mixed, run(TORCH[name]), dtypes, strict=True):
            tol = {torch.bfloat16: 1e-2, torch.float32: 1e-5}.get(d, 1e-12)
            assert_same([ours.float()], [theirs.float()], tol)
    for i, d in enumerate(dtypes):
        alone = [torch.nn.Parameter(params_of()[i].detach().to(d))]
        opt = factory(alone, lr=0.01)
        for t in range(STEPS):
            alone[0].grad = grads_for(mixed, t)[i]
            opt.step()
        tol = {torch.bfloat16: 1e-2, torch.float32: 1e-5}.get(d, 1e-12)
        assert_same([mixed[i].float()], [alone[0].float()], tol)


@every
def test_lr_schedulers(name: str, path: str) -> None:
    """LambdaLR, then a learning rate per group set by the scheduler, as in torch.optim."""

    def run(factory: Factory) -> list[torch.Tensor]:
        params = params_of()
        opt = factory([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], lr=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t))
        for t in range(STEPS):
            for p, g in zip(params, grads_for(params, t), strict=True):
                p.grad = g
            opt.step()
            sched.step()
        assert opt.param_groups[1]["lr"] == pytest.approx(0.02 / (1 + STEPS))
        return params

    against_torch(name, run, run(make(name, path)))


# -- 2. torch.compile of the step ------------------------------------------------------------------
# torch's twin with step-dependent scalars on both paths, a global reduction, no step.
COMPILED_STEP = [
    ("adam", "single"),
    ("adam", "foreach"),
    ("program4", "single"),
    ("lion", "foreach"),
]


@pytest.mark.parametrize(("name", "path"), COMPILED_STEP)
def test_torch_compile_of_the_step(name: str, path: str) -> None:
    """``torch.compile(opt.step)`` traces (Dynamo, ``aot_eager``) and steps as the eager one."""
    factory = make(name, path)
    eager, compiled = params_of(torch.float32), params_of(torch.float32)
    opt_e, opt_c = factory(eager, lr=0.01), factory(compiled, lr=0.01)
    step = torch.compile(opt_c.step, backend="aot_eager")
    for t in range(2):
        for ps in (eager, compiled):
            for p, g in zip(ps, grads_for(ps, t), strict=True):
                p.grad = g
        opt_e.step()
        step()
    assert_same(compiled, eager, 1e-6)


def test_torch_compile_of_a_training_step() -> None:
    """A training step with the optimizer's step inside, compiled with fullgraph=False."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    twin = copy.deepcopy(model)
    x = torch.randn(8, 4)
    for m, compile_it in ((model, True), (twin, False)):
        opt = klass("adam")(m.parameters(), foreach=False)

        def step(m: torch.nn.Module = m, opt: torch.optim.Optimizer = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = m(x).square().mean()
            loss.backward()
            opt.step()
            return loss

        run = torch.compile(step, backend="aot_eager", fullgraph=False) if compile_it else step
        for _ in range(3):
            run()
    assert_same(list(model.parameters()), list(twin.parameters()), 1e-6)


# -- 3, 4. copies and pickles --------------------------------------------------------------------
@corpus
def test_state_dtype_survives_deepcopy_and_pickle(name: str) -> None:
    if not signature(parse(TEXT[name])).hypers() and "acc" not in TEXT[name] and name == "sgd":
        return  # no state
    opt = train(klass(name), params_of(torch.float32), 2, lr=0.01, state_dtype=torch.bfloat16)
    for other in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        other.load_state_dict(opt.state_dict())
        for state in other.state.values():
            tensors = [v for k, v in state.items() if k != "step"]
            assert all(v.dtype == torch.bfloat16 for v in tensors)


@every
def test_pickled_optimizer_steps_on(name: str, path: str) -> None:
    """``torch.save(opt)`` (the whole optimizer, class by reference) and back: the copy steps
    as the original."""
    skip_flat(name, path)
    params = params_of()
    opt = train(make(name, path), params, 2, lr=0.01)
    back = _save_load(opt, weights_only=False)
    assert type(back) is type(opt)
    twin = back.param_groups[0]["params"]  # type: ignore[attr-defined]
    train(None, params, 2, start=2, opt=opt)  # type: ignore[arg-type]
    train(None, twin, 2, start=2, opt=back)  # type: ignore[arg-type]
    assert_same(twin, params, 0)


def test_a_new_process_unpickles_the_class_by_name(tmp_path: Path) -> None:
    """Spawn-based multiprocessing and Ray unpickle in a fresh interpreter: the module is
    re-created there from its name."""
    opt = train(klass("lion"), params_of(), 2, lr=0.01)
    path = tmp_path / "opt.pkl"
    path.write_bytes(pickle.dumps(opt))
    code = (
        "import pickle, sys; o = pickle.load(open(sys.argv[1], 'rb')); "
        "print(type(o).__name__, len(o.state), o.defaults['lr'])"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    assert out.stdout.split() == ["Lion", "4", "0.01"]


# -- 5. flat buffers and parameters without gradients ------------------------------------------
@pytest.mark.parametrize("set_to_none", [True, False])
@corpus
def test_flat_treats_a_frozen_parameter_as_the_plain_path(name: str, set_to_none: bool) -> None:
    """A parameter frozen mid-training (``requires_grad_(False)``) after ``zero_grad``: with
    set_to_none it is skipped (not moved by its momentum); without, it steps with a zero
    gradient; flat=True does exactly what the per-parameter step does."""
    runs = []
    for flat in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)).double()
        opt = klass(name)(model.parameters(), lr=0.01, flat=flat)
        x = torch.randn(5, 3, dtype=torch.float64)
        for t in range(4):
            if t == 2:
                model[0].weight.requires_grad_(False)
                frozen = model[0].weight.detach().clone()
            opt.zero_grad(set_to_none=set_to_none)
            model(x).square().mean().backward()
            opt.step()
        if set_to_none:
            assert torch.equal(model[0].weight.detach(), frozen)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert_same(runs[1], runs[0], 0 if elementwise(name) else 1e-12)


# -- 6. hyperparameter validation ----------------------------------------------------------------
INVALID = {"unit": (1.0, -0.1, 1.5, math.nan), "nonnegative": (-1.0, -1e-12)}
ISSUE_CASES: list[dict[str, object]] = [
    {"betas": (1.0, 0.0)},
    {"betas": (0.9, 1.5)},
    {"eps": -1},
    {"momentum": -0.5},
    {"weight_decay": -1},
]


@corpus
def test_out_of_range_hyperparameters_raise_value_error_naming_them(name: str) -> None:
    sig = signature(parse(TEXT[name]))
    cls = klass(name)
    checked = 0
    for i, h in enumerate(sig.betas):
        for bad in INVALID.get(h.bound or "", ()):
            betas = [float(b.default) for b in sig.betas]
            betas[i] = bad
            kwargs = {"betas": tuple(betas)} if len(betas) > 1 else {h.name: bad}
            label = f"betas[{i}]" if len(betas) > 1 else h.name
            with pytest.raises(ValueError, match=label.replace("[", r"\[")):
                cls(params_of(), lr=0.1, **kwargs)
            checked += 1
    for h in (*sig.eps, *((sig.weight_decay,) if sig.weight_decay else ()), *sig.named):
        for bad in INVALID.get(h.bound or "", ()):
            with pytest.raises(ValueError, match=h.name):
                cls(params_of(), lr=0.1, **{h.name: bad})
            checked += 1
    with pytest.raises(ValueError, match="learning rate"):
        cls(params_of(), lr=-1.0)
    assert checked == sum(len(INVALID[h.bound]) for h in sig.hypers() if h.bound)
    if name in TORCH:  # the issue's cases that torch.optim refuses, where ours takes the keyword
        ours = inspect.signature(cls.__init__).parameters
        for kwargs in ISSUE_CASES:
            if next(iter(kwargs)) not in ours:
                continue
            with pytest.raises(ValueError):
                TORCH[name](params_of(), **kwargs)
            with pytest.raises(ValueError):
                cls(params_of(), lr=0.1, **kwargs)


# -- 8. complex parameters -----------------------------------------------------------------------
@every
def test_complex_parameters_step_as_their_real_views(name: str, path: str) -> None:
    """Element-wise programs step a complex parameter as torch.optim does: as its real view
    (pairs of reals). Programs that reduce over tensors refuse it."""
    factory = make(name, path)
    gen = torch.Generator().manual_seed(3)
    z = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.complex128, generator=gen))
    r = torch.nn.Parameter(torch.view_as_real(z.detach()).clone())
    if not elementwise(name):
        z.grad = torch.ones_like(z)
        with pytest.raises(RuntimeError, match="complex"):
            factory([z], lr=0.01).step()
        return

    def run(make_opt: Factory, p: torch.nn.Parameter) -> torch.Tensor:
        opt = make_opt([p], lr=0.01)
        for t in range(STEPS):
            g = torch.randn(
                3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(t)
            )
            p.grad = torch.view_as_complex(g) if p.is_complex() else g
            opt.step()
        return torch.view_as_real(p.detach()) if p.is_complex() else p.detach()

    z2 = torch.nn.Parameter(z.detach().clone())
    ours = run(factory, z)
    assert_same([ours], [run(factory, r)], 0 if path != "fused" else 1e-12)
    if name in TORCH:
        assert_same([ours], [run(TORCH[name], z2)])


# -- 9. differentiable, capturable, foreach with fused -------------------------------------------
@corpus
def test_differentiable_step_passes_gradcheck(name: str) -> None:
    """differentiable=True: autograd records the step (per-tensor path); gradcheck of the new
    weight and states with respect to the weight, gradient and states."""
    cls = klass(name)
    gen = torch.Generator().manual_seed(5)

    def rand() -> torch.Tensor:
        x = torch.rand(3, dtype=torch.float64, generator=gen) + 0.5
        return x.requires_grad_()

    probe = cls([torch.nn.Parameter(torch.ones(3, dtype=torch.float64))], lr=0.1)
    names = sorted(probe.state_dict()["param_groups"][0].keys())  # keeps the optimizer honest
    assert "differentiable" in names
    probe.param_groups[0]["params"][0].grad = torch.ones(3, dtype=torch.float64)
    probe.step()
    keys = [k for k in probe.state[probe.param_groups[0]["params"][0]] if k != "step"]

    def step(w: torch.Tensor, g: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = w.clone()
        p.grad = g
        opt = cls([p], lr=0.1, differentiable=True)
        opt.state[p].update(
            {"step": 1, **{k: s.clone() for k, s in zip(keys, states, strict=True)}}
        )
        opt.step()
        return (p, *(opt.state[p][k] for k in keys))

    inputs = (rand(), rand(), *(rand() for _ in keys))
    assert torch.autograd.gradcheck(step, inputs, eps=1e-6, atol=1e-5)


@corpus
def test_keywords_torch_users_pass(name: str) -> None:
    cls = klass(name)
    cls(params_of(), lr=0.1, capturable=False, differentiable=False)
    with pytest.raises(ValueError, match="capturable"):
        cls(params_of(), lr=0.1, capturable=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        cls(params_of(), lr=0.1, foreach=True, fused=True)
    with pytest.raises(RuntimeError, match="differentiable"):
        cls(params_of(), lr=0.1, differentiable=True, fused=True)


# -- 10. recompiles ------------------------------------------------------------------------------
def test_many_kinds_of_parameters_do_not_hit_the_recompile_limit() -> None:
    """Ten kinds (dtype x maximize x state_dtype) on the fused path: more than Dynamo's limit of
    8 compilations per function, which one shared kernel would hit."""
    cls = compile_torch(parse(TEXT["adam"]))  # a module of its own: Dynamo alone (the limit is
    options = vars(sys.modules[cls.__module__])["COMPILE_OPTIONS"]  # Dynamo's), no AOT
    options.pop("options", None)
    options["backend"] = "eager"
    cls.fused_min_numel = 0  # type: ignore[attr-defined]
    factory = functools.partial(cls, fused=True)
    kinds = 0
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for maximize in (False, True):
            for state_dtype in (None, torch.bfloat16):
                if dtype == torch.bfloat16 and state_dtype is not None:
                    continue
                params = [torch.nn.Parameter(torch.randn(8, dtype=dtype))]
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # no fallback either
                    train(factory, params, 1, maximize=maximize, state_dtype=state_dtype)
                kinds += 1
    assert kinds == 10


def test_a_kernel_that_fails_to_compile_falls_back_to_foreach_with_a_warning() -> None:
    cls = compile_torch(parse(TEXT["adam"]))  # a module of its own, with a failing backend

    def failing(gm: object, example: object) -> object:
        raise RuntimeError("no compiler here")

    options = vars(sys.modules[cls.__module__])["COMPILE_OPTIONS"]
    options.pop("options", None)
    options["backend"] = failing
    cls.fused_min_numel = 0  # type: ignore[attr-defined]
    fused, plain = params_of(), params_of()
    with pytest.warns(RuntimeWarning, match="take the foreach path"):
        train(cls, fused, fused=True)
    train(cls, plain, foreach=True)
    assert_same(fused, plain, 0)


# -- 11. a readable module -----------------------------------------------------------------------
RUNTIME = Path(__file__).resolve().parent.parent / "simplifier" / "emit" / "runtime.py"
MARKER = "# -- The machinery below is copied from simplifier/emit/runtime.py"


def _definitions(source: str) -> dict[str, str]:
    import ast

    tree = ast.parse(source)
    out = {}
    for node in tree.body:
        name = getattr(node, "name", None)
        if name is None and isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            name = getattr(target, "id", None)
        if name is not None:
            out[name] = ast.get_source_segment(source, node) or ""
    return out


@corpus
def test_the_module_reads_class_first_and_copies_its_machinery_from_runtime(name: str) -> None:
    """The class comes first, then the step functions with the program's math; below a marker,
    the shared machinery, each definition copied verbatim from ``simplifier/emit/runtime.py``
    (where ruff and mypy check it), and only there."""
    import linecache

    module = sys.modules[klass(name).__module__]  # compile_torch registers its source
    source = "".join(linecache.getlines(module.__file__ or ""))
    head, marker, tail = source.partition(MARKER)
    assert marker, "no machinery marker"
    tail = tail.split("\n", 1)[1]  # the rest of the marker's line
    runtime = _definitions(RUNTIME.read_text(encoding="utf-8"))
    own, copied = _definitions(head), _definitions(tail)
    first = next(iter(k for k in own if k != "__all__"))
    assert first == klass(name).__name__
    # The program's part (the class, its four step functions) is short: ~330 lines of class and
    # paths, a few lines per statement and per state on each path (NAdam: 589 lines).
    program = parse(TEXT[name])
    assert head.count("\n") < 330 + 7 * len(program.body) + 12 * len(program.states)
    for fn in ("_single_tensor_step", "_foreach_step", "_fused_step", "_kernel"):
        assert fn in own and fn not in runtime
    assert copied and not set(own) & set(runtime)
    for key, text in copied.items():
        assert runtime.get(key) == text, f"{key} differs from runtime.py's"
