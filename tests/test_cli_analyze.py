"""``simplifier analyze`` and ``simplifier hash``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from simplifier.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


def analyze(capsys, *args: str) -> dict:
    assert main(["analyze", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_analyze_json_shape(capsys):
    r = analyze(capsys, str(CORPUS / "adam.py"))
    assert set(r) >= {"statements", "states", "types", "hash", "fingerprint"}
    for s in r["statements"]:
        assert isinstance(s["line"], int) and isinstance(s["text"], str)
        assert isinstance(s["live"], bool) and (s["reason"] is None) == s["live"]
    assert [s["name"] for s in r["states"]] == ["m", "v"]
    assert all(isinstance(s["live"], bool) for s in r["states"])
    assert set(r["types"].values()) <= {"scalar", "tensor"}
    assert r["types"]["lr"] == "scalar" and r["types"]["m"] == "tensor"
    assert re.fullmatch(r"[0-9a-f]{32}", r["hash"])
    assert re.fullmatch(r"[0-9a-f]{32}", r["fingerprint"])


def test_analyze_program4(capsys):
    r = analyze(capsys, str(CORPUS / "program4.py"))
    dead = [s for s in r["statements"] if not s["live"]]
    assert [s["text"] for s in dead] == ["m = cosh(update)"]
    line = next(s["line"] for s in r["statements"] if s["text"] == "m = interp(g, v, 0.899)")
    assert dead[0]["reason"] == (
        f"only feeds state 'm', whose value is overwritten at line {line} "
        "before it is read in the next step"
    )
    assert r["states"] == [
        {"name": "m", "live": False, "reason": f"overwritten at line {line} before it is read"},
        {"name": "v", "live": True, "reason": None},
    ]


def test_analyze_raw_program4_marks_exactly_the_padding(capsys):
    r = analyze(capsys, str(CORPUS / "program4_raw.py"))
    text = (CORPUS / "program4_raw.py").read_text()
    padding = {int(n) for n in re.search(r"# padding: ([\d ]+)", text).group(1).split()}
    cosh = next(s["line"] for s in r["statements"] if s["text"] == "m = cosh(update)")
    assert {s["line"] for s in r["statements"] if not s["live"]} == padding | {cosh}
    clean = analyze(capsys, str(CORPUS / "program4.py"))
    assert (r["hash"], r["fingerprint"]) == (clean["hash"], clean["fingerprint"])


def test_analyze_within_step(capsys):
    r = analyze(capsys, str(CORPUS / "program4.py"), "--within-step")
    assert all(s["live"] for s in r["statements"]) and all(s["live"] for s in r["states"])


def test_analyze_text_output(capsys):
    assert main(["analyze", str(CORPUS / "program4.py")]) == 0
    out = capsys.readouterr().out
    assert "DEAD  m = cosh(update)" in out and "only feeds state 'm'" in out
    assert "structural hash" in out and "fingerprint" in out


def test_analyze_semantics_changes_the_fingerprint_only(capsys):
    a = analyze(capsys, str(CORPUS / "program4.py"))
    b = analyze(capsys, str(CORPUS / "program4.py"), "--semantics", "hero")
    assert a["hash"] == b["hash"] and a["fingerprint"] != b["fingerprint"]


def test_hash_one_line_per_file_and_duplicates_match(capsys):
    files = [str(CORPUS / "program4.py"), str(CORPUS / "program4_raw.py"), str(CORPUS / "adam.py")]
    assert main(["hash", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    rows = [line.split() for line in lines]
    assert [r[2] for r in rows] == files
    assert rows[0][:2] == rows[1][:2] != rows[2][:2]


def test_hash_directory_and_json(capsys):
    assert main(["hash", str(CORPUS), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert len(r["programs"]) == len(list(CORPUS.glob("*.py")))
    assert {"path", "hash", "fingerprint"} <= set(r["programs"][0])


def test_bad_input_exits_2_and_continues(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(w, g):\n  x = clip(g, w)\n  return x\n")
    assert main(["hash", str(bad), str(CORPUS / "sgd.py")]) == 2
    out, err = capsys.readouterr()
    assert "sgd.py" in out and "bad.py:2" in err and "Traceback" not in err
    assert main(["analyze", str(bad)]) == 2
    assert "must be a scalar" in capsys.readouterr().err


def test_entry_point():
    run = subprocess.run(
        [sys.executable, "-m", "simplifier", "hash", str(CORPUS / "lion.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip().endswith("lion.py")
