"""The command line for a newcomer: misspelled options, ``--example``, JSON reports (schema
version, errors as objects, every file of ``check``), and what a command imports at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simplifier.cli import SCHEMA_VERSION, main

ROOT = Path(__file__).resolve().parent.parent
LION = str(ROOT / "corpus/lion.py")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_misspelled_option_gets_the_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", LION, "--jsno"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: simplifier check ")
    assert "simplifier check: error: unrecognized arguments: --jsno (did you mean --json?)" in err


def test_unknown_top_level_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_example_names_a_shipped_program(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--example", "lion", "--example=equiv/lion_scaled")
    assert code == 0
    assert "corpus/lion.py: ok: lion" in out and "lion_scaled.py: ok" in out
    code, _, err = run(capsys, "check", "--example", "nope")
    assert code == 2 and "--example nope: no such example (known: adabelief," in err


def test_every_json_report_has_the_schema_version(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["check", LION], ["hash", LION], ["analyze", LION], ["equiv", LION, LION]):
        code, out, _ = run(capsys, *args, "--json")
        assert code == 0
        assert next(iter(json.loads(out))) == "schema_version"
        assert json.loads(out)["schema_version"] == SCHEMA_VERSION


def test_check_json_reports_good_and_bad_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(w, g):\n  return g +\n")
    code, out, err = run(capsys, "check", "--json", LION, str(bad))
    assert code == 2
    report = json.loads(out)
    assert [p["name"] for p in report["programs"]] == ["lion"]
    assert report["errors"] == [
        {"file": str(bad), "line": 2, "column": 13, "message": report["errors"][0]["message"]}
    ]
    assert report["errors"][0]["message"].startswith("unexpected end of line")
    assert f"{bad}:2:13: error: unexpected end of line" in err
    code, out, err = run(capsys, "check", LION, str(bad))  # text: the good one, then the error
    assert code == 2 and "ok: lion" in out and f"{bad}:2:13: error" in err


def test_other_commands_print_errors_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "hash", "--json", "missing.py", LION)
    assert code == 2
    report = json.loads(out)
    assert [p["path"] for p in report["programs"]] == [LION]
    assert report["errors"] == [
        {"file": "missing.py", "line": 1, "column": 1, "message": "no such file"}
    ]
    assert "missing.py:1:1: error: no such file" in err
    code, out, err = run(capsys, "analyze", "--json", "missing.py")
    assert code == 2
    assert json.loads(out) == {"schema_version": SCHEMA_VERSION, "errors": report["errors"]}
    code, out, _ = run(capsys, "equiv", "--json", LION, LION, "--steps", "0")
    assert code == 2 and json.loads(out)["errors"][0]["file"] is None


IMPORTS = """
import sys
from simplifier.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("numpy", "sympy", "torch", "lark", "mpmath", "z3", "simplifier.emit", "simplifier.cli.")
print(" ".join(sorted({m.split(".")[0] if not m.startswith("simplifier") else m
                       for m in sys.modules if m.startswith(heavy)})))
"""


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        (["--version"], ""),
        (["check", "corpus/lion.py"], "lark simplifier.cli.check simplifier.cli.common"),
        (  # a usage error of a command with --backend: no torch (the executor) to say it
            ["simplify", "-o", "", "corpus/lion.py"],
            "lark simplifier.cli.ablate simplifier.cli.backend simplifier.cli.common "
            "simplifier.cli.simplify",
        ),
    ],
)
def test_a_command_imports_only_what_it_needs(args: list[str], loaded: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS, *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == loaded


def test_a_parameter_taken_as_a_state_is_explained() -> None:
    from simplifier.errors import ProgramError
    from simplifier.parse import parse

    text = "def lion(w, g, m, lr, beta1):\n  m = interp(g, m, beta1)\n  return sign(m) * lr, m\n"
    with pytest.raises(ProgramError) as info:
        parse(text)
    assert info.value.message == (
        "return gives 2 value(s); expected 3 (update, m, beta1); a parameter without a default "
        "that is not w, g, lr or step is a state (m, beta1): mark a hyperparameter "
        "'beta1: hyper' or give it a default ('beta1=0.9')"
    )
    assert parse(text.replace("beta1)", "beta1: hyper)", 1), values={"beta1": 0.9}).hypers


def test_usage_errors_are_json_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["equiv", "--json", LION, LION, "--steps", "x"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["errors"] == [
        {
            "file": None,
            "line": None,
            "column": None,
            "message": "argument --steps: invalid int value: 'x'",
        }
    ]
    assert err.startswith("usage: simplifier equiv")
    with pytest.raises(SystemExit):
        main(["equiv", LION, LION, "--steps", "x"])  # without --json: stderr only
    assert capsys.readouterr().out == ""


def test_the_backend_options_name_the_executors_backends() -> None:
    from simplifier.cli.backend import BACKENDS
    from simplifier.executor import BACKENDS as EXECUTORS

    assert BACKENDS == EXECUTORS
