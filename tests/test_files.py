"""Files (issue 14, item 6): what the CLI reads and writes.

Outputs (``-o``, ``--plot``) are created exclusively with the umask's mode, replaced only with
``--force`` (keeping the old mode), never when they are a directory or a device; ``-o -`` is
stdout; write errors are one line ``simplifier CMD: error: cannot write PATH: REASON`` with exit 2
and nothing left behind; a SIGINT once the file is complete does not turn the answer into
"interrupted". Inputs must be regular files of at most ``MAX_SOURCE_BYTES``.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simplifier.cli import common, main
from simplifier.errors import OutputError, ProgramError
from simplifier.parse import MAX_SOURCE_BYTES, read_source

ROOT = Path(__file__).resolve().parent.parent
LION = str(ROOT / "corpus" / "lion.py")
PROGRAM = "def train(w, g, lr):\n  return g * lr\n"


def emit(out: str, *extra: str) -> int:
    return main(["emit", LION, "-o", out, *extra])


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


# -- modes ------------------------------------------------------------------------------------
def test_new_file_honours_the_umask(tmp_path: Path, umask_027: None) -> None:
    out = tmp_path / "o.py"
    assert emit(str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_force_keeps_the_replaced_files_mode(tmp_path: Path, umask_027: None) -> None:
    out = tmp_path / "o.py"
    out.write_text("old\n")
    out.chmod(0o604)
    assert emit(str(out), "--force") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    assert "class Lion" in out.read_text()
    assert leftovers(tmp_path) == []


# -- what is never replaced ---------------------------------------------------------------------
def test_existing_file_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.py"
    out.write_text("mine\n")
    assert emit(str(out)) == 2
    assert "pass --force" in capsys.readouterr().err
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("kind", ["dangling", "loop", "to-file"])
def test_symlinks_are_not_replaced_without_force(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "link.py"
    target = {"dangling": tmp_path / "nowhere", "loop": link, "to-file": tmp_path / "t.py"}[kind]
    if kind == "to-file":
        target.write_text("mine\n")
    link.symlink_to(target)
    assert emit(str(link)) == 2
    assert "pass --force" in capsys.readouterr().err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert not (tmp_path / "nowhere").exists()
    if kind == "to-file":
        assert target.read_text() == "mine\n"


def test_force_replaces_a_link_to_a_device_not_the_device(tmp_path: Path) -> None:
    link = tmp_path / "null.py"
    link.symlink_to(os.devnull)
    assert emit(str(link), "--force") == 0
    assert not link.is_symlink() and link.is_file()
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("force", [False, True])
def test_a_device_is_never_replaced(force: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert emit(os.devnull, *(["--force"] if force else [])) == 2
    err = capsys.readouterr().err
    assert f"cannot write {os.devnull}: it is a character device" in err
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_fifo_is_never_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "o.py"
    os.mkfifo(fifo)
    assert emit(str(fifo), "--force") == 2  # must not block opening it, nor replace it
    assert "it is a FIFO" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_directory_is_never_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emit(str(tmp_path), "--force") == 2
    assert "it is a directory" in capsys.readouterr().err


def test_concurrent_writers_without_force_one_wins(tmp_path: Path) -> None:
    out = str(tmp_path / "o.py")
    results: list[str] = []

    def write(i: int) -> None:
        try:
            common.write_output(out, f"writer {i}\n" * 1000, force=False)
            results.append(f"ok {i}")
        except OutputError:
            results.append("refused")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("ok")]
    assert len(winners) == 1 and len(results) == 8
    assert Path(out).read_text() == f"writer {winners[0].split()[1]}\n" * 1000
    assert leftovers(tmp_path) == []


# -- paths -------------------------------------------------------------------------------------
def test_dash_is_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert emit("-") == 0
    assert "class Lion" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_simplify_dash_is_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.py"
    src.write_text(PROGRAM)
    assert main(["simplify", str(src), "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("def train(")
    assert not (tmp_path / "-").exists()


def test_empty_output_path_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        emit("")
    assert e.value.code == 2
    assert "empty output path" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["missing/o.py", "missing/"])
def test_missing_directory_is_an_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert emit(f"{tmp_path}/{name}") == 2
    err = capsys.readouterr().err
    assert "error: cannot write" in err and "does not exist" in err
    assert "Traceback" not in err


# -- write errors leave nothing behind ----------------------------------------------------------
@pytest.mark.parametrize(
    ("fails", "reason"),
    [("open", errno.EROFS), ("open", errno.EACCES), ("write", errno.ENOSPC), ("fsync", errno.EIO)],
)
def test_write_errors_are_one_line_and_leave_nothing(
    fails: str,
    reason: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = getattr(os, fails)

    def failing(*args, **kwargs):
        if fails != "open" or str(args[0]).startswith(str(tmp_path)):
            raise OSError(reason, os.strerror(reason))
        return real(*args, **kwargs)

    monkeypatch.setattr(common.os, fails, failing)
    out = tmp_path / "o.py"
    assert emit(str(out)) == 2
    err = capsys.readouterr().err
    assert err == f"simplifier emit: error: cannot write {out}: {os.strerror(reason)}\n"
    assert list(tmp_path.iterdir()) == []


def test_read_only_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory; the EACCES case is simulated above")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert emit(str(ro / "o.py")) == 2
        assert "cannot write" in capsys.readouterr().err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["emit", "check"])
def test_stdout_on_a_full_device(command: str) -> None:
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-m", "simplifier", command, LION],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    assert run.returncode == 2
    assert run.stderr == (
        f"simplifier {command}: error: cannot write <stdout>: No space left on device\n"
    )


# -- SIGINT ------------------------------------------------------------------------------------
def test_sigint_after_the_file_is_written_is_not_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import simplifier.cli.emit as emit_cli

    real = emit_cli.lower

    def interrupted_lower(*args, **kwargs):  # runs after write_output, for the summary
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(emit_cli, "lower", interrupted_lower)
    out = tmp_path / "o.py"
    assert emit(str(out)) == 0
    assert "class Lion" in out.read_text()
    assert "class Lion(params" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_sigint_during_the_write_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fsync

    def interrupted_fsync(fd: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        real(fd)

    monkeypatch.setattr(common.os, "fsync", interrupted_fsync)
    assert emit(str(tmp_path / "o.py")) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_write_output_outside_a_command_restores_sigint(tmp_path: Path) -> None:
    common.write_output(str(tmp_path / "o.txt"), b"\x00bytes", force=False)
    assert (tmp_path / "o.txt").read_bytes() == b"\x00bytes"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- inputs ------------------------------------------------------------------------------------
def test_a_device_is_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/dev/zero"]) == 2  # must not read forever
    assert capsys.readouterr().err.startswith(
        "/dev/zero:1:1: error: not a regular file (a character device)"
    )


def test_a_fifo_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "f.py")
    (tmp_path / "ok.py").write_text(PROGRAM)
    assert main(["hash", str(tmp_path)]) == 2  # a folder with a FIFO: no blocking
    captured = capsys.readouterr()
    assert "f.py:1:1: error: not a regular file (a FIFO)" in captured.err
    assert "ok.py" in captured.out


def test_a_symlink_to_a_program_is_read(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(PROGRAM)
    (tmp_path / "link.py").symlink_to(tmp_path / "p.py")
    assert read_source(str(tmp_path / "link.py")) == PROGRAM


def test_input_size_is_capped(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text(PROGRAM + "#" * MAX_SOURCE_BYTES)
    with pytest.raises(ProgramError, match="larger than 256 KiB"):
        read_source(str(big))
    exact = tmp_path / "exact.py"
    exact.write_text(PROGRAM + "#" * (MAX_SOURCE_BYTES - len(PROGRAM)))
    assert len(read_source(str(exact))) == MAX_SOURCE_BYTES


@pytest.mark.parametrize("plot", ["", "-"])
def test_plot_must_be_a_file(plot: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["ablate", LION, "--plot", plot])
    assert e.value.code == 2
    assert "is not a file name" in capsys.readouterr().err


def test_a_closed_pipe_exits_quietly() -> None:
    """``simplifier check ... | head -0``: exit 1, and no "Exception ignored" at exit."""
    files = sorted(str(p) for p in (ROOT / "corpus").glob("*.py"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simplifier", "check", *files],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == ""
