"""``simplifier equiv A B``: verdicts, exit codes, JSON, ``--set`` over two programs, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from corpus_support import program4_ablated

from simplifier.cli import main

LION = """\
def lion(w, g, m, lr, beta1=0.9, beta2=0.99, weight_decay=0.0):
  c = interp(g, m, beta1)
  update = (sign(c) + weight_decay * w) * (lr * 0.0002)
  m = interp(g, m, beta2)
  return update, m
"""
LION_SET = ["--set", "beta1=0.899", "--set", "weight_decay=0.4602"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("p4.py", program4_ablated()), ("lion.py", LION)):
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    (tmp_path / "bad.py").write_text("def f(w, g):\n  return g +\n")
    out["bad.py"] = str(tmp_path / "bad.py")
    return out


def equiv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["equiv", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_proved_text(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out, err = equiv(
        capsys, files["p4.py"], files["lion.py"], *LION_SET, "--set", "beta2=0.996991"
    )
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].endswith(": proved (math semantics)")
    assert "  states: B.m = A.v" in lines
    assert any(ln.startswith("  where interp(g, v, 0.899) != 0") for ln in lines)


def test_refuted_json(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out, _ = equiv(capsys, files["p4.py"], files["lion.py"], *LION_SET, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["verdict"] == "refuted" and data["conditions"] == []
    cex = data["counterexample"]
    assert cex["step"] == 2 and len(cex["inputs"]) == 2
    assert set(cex["inputs"][0]) == {"step", "w", "g", "lr"}
    assert cex["update_a"] != cex["update_b"]


def test_refuted_text(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out, _ = equiv(capsys, files["p4.py"], files["lion.py"], *LION_SET)
    assert code == 1
    assert ": refuted (math semantics)" in out.splitlines()[0]
    assert "updates differ at step 2" in out
    assert "    step 1: w = " in out and "    A - B    = " in out


def test_identical_and_semantics_option(
    capsys: pytest.CaptureFixture[str], files: dict[str, str]
) -> None:
    code, out, _ = equiv(capsys, files["lion.py"], files["lion.py"], "--semantics", "hero")
    assert code == 0 and ": identical (hero semantics)" in out


@pytest.mark.parametrize("steps", ["2", "3"])
def test_steps_option(capsys: pytest.CaptureFixture[str], tmp_path: Path, steps: str) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return sign(m) * lr, m\n")
    b.write_text(
        "def f(w, g, e, lr):\n  m = interp(g, cbrt(e), 0.9)\n  return sign(m) * lr, cube(m)\n"
    )
    code, out, _ = equiv(capsys, str(a), str(b), "--steps", steps, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "proved-bounded" and data["details"]["steps"] == int(steps)


def test_rtol_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f(w, g, lr):\n  return g * 1.0000001\n")
    b.write_text("def f(w, g, lr):\n  return g\n")
    assert equiv(capsys, str(a), str(b))[0] == 1
    assert equiv(capsys, str(a), str(b), "--rtol", "1e-6")[0] == 0  # not-refuted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py", "lion.py"], "missing.py"),
        (["bad.py", "lion.py"], "bad.py:2"),
        (["p4.py", "lion.py", "--steps", "0"], "--steps"),
        (["p4.py", "lion.py", "--rtol", "-1"], "--rtol"),
        (["p4.py", "lion.py", "--rtol", "nan"], "--rtol"),
        (["p4.py", "lion.py", "--set", "gamma=1"], "gamma"),
        (["p4.py", "lion.py", "--set", "beta1=x"], "beta1"),
    ],
)
def test_bad_input_exits_2_with_one_located_line(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    resolved = [files.get(a, a) for a in args]
    code, out, err = equiv(capsys, *resolved)
    assert code == 2 and out == ""
    first = err.splitlines()[0]
    assert message in first and "Traceback" not in err


@pytest.mark.skipif(shutil.which("simplifier") is None, reason="console script not installed")
def test_console_script(files: dict[str, str]) -> None:
    done = subprocess.run(
        ["simplifier", "equiv", files["p4.py"], files["lion.py"], *LION_SET],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "refuted" in done.stdout and done.stderr == ""
    bad = subprocess.run(
        ["simplifier", "equiv", files["bad.py"], files["lion.py"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) <= 3  # error line + context
    assert "Traceback" not in bad.stderr
