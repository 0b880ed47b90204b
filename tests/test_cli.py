"""``simplifier check`` (text and JSON), ``--set``, ``--semantics``, ``--version``, ``--help`` and
``python -m simplifier``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simplifier import __version__
from simplifier.cli import main

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PROGRAM_4 = str(CORPUS / "program4.py")

PROGRAM_4_ROLES = {"w": "weight", "g": "gradient", "m": "state", "v": "state", "lr": "lr"}
PROGRAM_4_TYPES = {
    "w": "tensor",
    "g": "tensor",
    "m": "tensor",
    "v": "tensor",
    "lr": "scalar",
    "m2": "tensor",
    "abs_m": "tensor",
    "update": "tensor",
    "wd": "tensor",
}


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def text_report(out: str) -> dict[str, Any]:
    """Read back the text report of one program: header, roles, states, hypers and types."""
    lines = out.rstrip("\n").split("\n")
    report: dict[str, Any] = {"header": lines[0], "types": {}}
    section = ""
    for line in lines[1:]:
        key, sep, rest = line.strip().partition(":")
        if sep and key in ("roles", "states", "hypers", "types") and line.startswith("  " + key):
            section = key
            if key == "roles":
                report["roles"] = dict(item.split(" ") for item in rest.strip().split(", "))
            elif key == "states":
                report["states"] = rest.strip().split(", ")
            elif key == "hypers":
                report["hypers"] = dict(item.split("=") for item in rest.strip().split(", "))
            continue
        if section == "types" and line.startswith("    "):
            name, kind = line.split()[:2]
            report["types"][name] = kind
    return report


# -- check on Program 4 ----------------------------------------------------------------------------
def test_check_program_4_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, PROGRAM_4)
    assert code == 0 and err == ""
    r = text_report(out)
    assert r["header"] == f"{PROGRAM_4}: ok: train"
    assert r["roles"] == PROGRAM_4_ROLES
    assert r["states"] == ["m", "v"]
    assert r["types"] == PROGRAM_4_TYPES
    assert "hypers" not in r


def test_check_program_4_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "--json", PROGRAM_4)
    assert code == 0 and err == ""
    data = json.loads(out)
    [p] = data["programs"]
    assert p["path"] == PROGRAM_4 and p["name"] == "train"
    assert {q["name"]: q["role"] for q in p["params"]} == PROGRAM_4_ROLES
    assert [q["name"] for q in p["params"]] == ["w", "g", "m", "v", "lr"]
    assert p["states"] == ["m", "v"]
    assert p["types"] == PROGRAM_4_TYPES
    # every assignment, in order, with its SSA id, line and type
    assert [(v["name"], v["ssa"], v["line"]) for v in p["values"]][:3] == [
        ("g", "g.1", 6),
        ("g", "g.2", 7),
        ("m", "m.1", 8),
    ]
    assert len(p["values"]) == 12
    assert all(v["type"] in ("scalar", "tensor") for v in p["values"])
    assert {v["ssa"]: v["type"] for v in p["values"]}["lr.1"] == "scalar"


def test_text_and_json_agree_on_the_whole_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted(CORPUS.glob("*.py"))]
    code, out, _ = check(capsys, *files)
    assert code == 0
    texts = [text_report(block) for block in out.rstrip("\n").split("\n\n")]
    code, out, _ = check(capsys, "--json", *files)
    assert code == 0
    reports = json.loads(out)["programs"]
    assert len(texts) == len(reports) == len(files)
    for t, j, path in zip(texts, reports, files, strict=True):
        assert t["header"] == f"{path}: ok: {j['name']}" and j["path"] == path
        assert t["roles"] == {q["name"]: q["role"] for q in j["params"]}
        assert t["types"] == j["types"]
        assert t.get("states", ["(none)"]) == (j["states"] or ["(none)"])


def test_hypers_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, str(CORPUS / "adam.py"))
    assert code == 0
    r = text_report(out)
    assert r["hypers"] == {"beta1": "0.9", "beta2": "0.999", "eps": "1e-08"}
    assert r["roles"]["step"] == "step" and r["types"]["step"] == "scalar"


# -- --set and --semantics -----------------------------------------------------------------------
def test_set_gives_a_hyper_its_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.py"
    path.write_text(
        "def f(w, g, m, lr, beta: hyper, gamma: hyper):\n"
        "  m = interp(g, m, beta)\n  return sign(m) * lr * gamma, m\n",
        encoding="utf-8",
    )
    code, _, err = check(capsys, str(path))
    assert code == 2 and "hyper 'beta' has no value" in err
    code, out, _ = check(capsys, str(path), "--set", "beta=0.9", "--set", "gamma=1e-3")
    assert code == 0
    assert text_report(out)["hypers"] == {"beta": "0.9", "gamma": "0.001"}
    code, out, _ = check(capsys, "--json", str(path), "--set", "beta=0.9", "--set", "gamma=2")
    params = {q["name"]: q["default"] for q in json.loads(out)["programs"][0]["params"]}
    assert params["beta"] == "0.9" and params["gamma"] == "2"


def test_set_overrides_a_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, str(CORPUS / "lion.py"), "--set", "weight_decay=0.5")
    assert code == 0
    assert text_report(out)["hypers"]["weight_decay"] == "0.5"


@pytest.mark.parametrize("semantics", ["math", "hero"])
def test_semantics_option(semantics: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, "--semantics", semantics, PROGRAM_4)
    assert code == 0 and text_report(out)["roles"] == PROGRAM_4_ROLES


def test_bad_semantics_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--semantics", "exact", PROGRAM_4])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_check_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    assert "FILE" in capsys.readouterr().err


# -- --version, --help, no command ---------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"simplifier {__version__}"


def test_help_lists_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: simplifier") and "check" in out


def test_check_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--json", "--semantics", "--set NAME=VALUE", "FILE"):
        assert option in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: simplifier")


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# -- real processes ----------------------------------------------------------------------------
def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)


def test_python_dash_m() -> None:
    r = _run(sys.executable, "-m", "simplifier", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"simplifier {__version__}"
    r = _run(sys.executable, "-m", "simplifier", "check", "--json", PROGRAM_4)
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["programs"][0]["types"] == PROGRAM_4_TYPES


def test_console_script() -> None:
    """The installed ``simplifier`` command (next to this interpreter, or on PATH)."""
    script = Path(sys.executable).with_name("simplifier")
    command = str(script) if script.exists() else shutil.which("simplifier")
    assert command, "the simplifier console script is not installed"
    r = _run(command, "check", PROGRAM_4)
    assert r.returncode == 0 and r.stderr == ""
    assert text_report(r.stdout)["roles"] == PROGRAM_4_ROLES
