"""``simplifier emit``: writes a module a user can import and train with; bad input exits 2 with
one located error line, no traceback and no file."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simplifier.cli import main

LION = """def train(w, g, v, lr):
  c = interp(g, v, 0.899)
  update = (sign(c) + w * 0.4602) * (lr * 0.0002)
  v = interp(g, v, 0.996991)
  return update, v
"""


def _import(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_emit_writes_an_importable_lion_that_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "lion.py"
    src.write_text(LION, encoding="utf-8")
    out = tmp_path / "lion_optimizer.py"
    assert main(["emit", str(src), "-o", str(out), "--class-name", "Lion"]) == 0
    summary = capsys.readouterr().out
    assert "class Lion(params, lr=0.0002, betas=(0.899, 0.996991), weight_decay=0.4602)" in summary
    assert "state per parameter: v" in summary
    Lion = _import(out).Lion
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    opt = Lion(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_emit_to_stdout_and_class_name_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "my_lion.py"
    src.write_text(LION, encoding="utf-8")
    assert main(["emit", str(src)]) == 0
    text = capsys.readouterr().out
    assert "class MyLion(torch.optim.Optimizer):" in text
    compile(text, "emitted", "exec")


def test_emit_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "lion.py"
    src.write_text(LION, encoding="utf-8")
    out = tmp_path / "out.py"
    out.write_text("keep me", encoding="utf-8")
    assert main(["emit", str(src), "-o", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "keep me"
    assert main(["emit", str(src), "-o", str(out), "--force"]) == 0
    assert "class Lion" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("def f(w, g):\n  u = g +\n  return u\n", [], "bad.py:2:"),
        (LION, ["--class-name", "class"], "not a valid Python class name"),
        (LION, ["--set", "nope=1"], "no hyper named 'nope'"),
        ("def f(w, g, m):\n  m = norm(g)\n  return g, m\n", [], "bad.py:3:"),
    ],
)
def test_bad_input_exits_2_with_one_error_and_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, extra: list[str], message: str
) -> None:
    src = tmp_path / "bad.py"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out.py"
    assert main(["emit", str(src), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "error:" in err.splitlines()[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no partial or temporary file either


def test_semantics_and_set_reach_the_emitted_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "adam.py"
    src.write_text(
        "def adam(w, g, m, lr, beta=0.9):\n  m = interp(g, m, beta)\n  return lr * m / g, m\n",
        encoding="utf-8",
    )
    assert main(["emit", str(src), "--semantics", "hero", "--set", "beta=0.5"]) == 0
    text = capsys.readouterr().out
    assert "(hero semantics)" in text and "1e-08" in text
    assert "beta: float = 0.5," in text


def test_the_command_runs_as_a_program(tmp_path: Path) -> None:
    src = tmp_path / "lion.py"
    src.write_text(LION, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "simplifier", "emit", str(src), "-o", str(tmp_path / "o.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.py").exists()


def test_the_class_is_named_after_what_the_program_is(tmp_path: Path) -> None:
    """A name that is an optimizer's is used (in torch.optim's spelling) only for that optimizer:
    Program 4 simplified into ``lion.py`` still has ``arcsin(clip(g, lr))``: not ``Lion``. A
    ``train`` without a file is named after the optimizer it is."""
    from simplifier.emit import default_class_name
    from simplifier.parse import parse, parse_file

    assert default_class_name(parse_file("corpus/program1_lion.py")) == "Program1Lion"
    assert default_class_name(parse_file("corpus/adamw.py")) == "AdamW"
    assert default_class_name(parse_file("corpus/program3_adamw.py")) == "Program3Adamw"
    almost = LION.replace("c = interp(g, v", "g = arcsin(clip(g, lr))\n  c = interp(g, v")
    src = tmp_path / "lion.py"
    src.write_text(almost, encoding="utf-8")
    assert default_class_name(parse_file(str(src))) == "EmittedOptimizer"
    assert default_class_name(parse(LION)) == "Lion"
    assert default_class_name(parse(LION, str(tmp_path / "my_lion.py"))) == "MyLion"
