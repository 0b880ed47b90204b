"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from simplifier.errors import OutputError, UsageError
from simplifier.files import create_temp
from simplifier.ir import Program
from simplifier.parse import file_kind, literal_value, normalize_name, parse_file


def add_program_options(p: argparse.ArgumentParser) -> None:
    """``--semantics`` and ``--set NAME=VALUE``, for every command that reads programs."""
    p.add_argument(
        "--semantics",
        choices=("math", "hero"),
        default="math",
        help="numeric semantics: 'math' (default) or the paper's protected 'hero'",
    )
    p.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="give a hyper its value (repeatable), e.g. --set beta1=0.9",
    )


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")


def parse_values(items: list[str]) -> dict[str, Fraction]:
    """``["beta1=0.9"]`` -> ``{"beta1": Fraction(9, 10)}``, exactly."""
    values: dict[str, Fraction] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        try:  # the rules of a literal in a program (range, length); names compare after NFKC
            values[normalize_name(name.strip())] = literal_value(text.strip())
        except ValueError as e:
            raise UsageError(f"--set {name}: {e}") from None
    return values


def load(path: str, args: argparse.Namespace) -> Program:
    """Parse a program file with the command's ``--set`` values."""
    return parse_file(path, parse_values(getattr(args, "values", [])))


def print_json(data: dict[str, Any]) -> None:
    """A ``--json`` report on stdout, its first field ``"schema_version"`` (docs/cli.md)."""
    from simplifier.cli import SCHEMA_VERSION

    json.dump({"schema_version": SCHEMA_VERSION, **data}, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def output_option(text: str) -> str:
    """The argparse type of ``-o``: a path, or ``-`` for stdout; never empty."""
    if not text:
        raise argparse.ArgumentTypeError("an empty output path (use '-' for stdout)")
    return text


def file_option(text: str) -> str:
    """The argparse type of an output that must be a file (``--plot``): not empty, not ``-``."""
    if not text or text == "-":
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    return text


def check_output(path: str, force: bool) -> None:
    """Refuse, before any work, an output that :func:`write_output` would refuse.

    ``-`` is stdout. An existing path is replaced only with ``force``, and only if it is a regular
    file or a symbolic link (the link itself is replaced, never followed); a directory, a device,
    a FIFO or a socket is never replaced. The directory must exist.
    """
    if path == "-":
        return
    if not path:
        raise OutputError(repr(path), "an empty output path")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(path, e.strerror or str(e)) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(path, "it is a directory")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise OutputError(path, f"it is {file_kind(st.st_mode)}, not a regular file")
        if not force:
            what = " (a symbolic link)" if stat.S_ISLNK(st.st_mode) else ""
            raise OutputError(path, f"it exists{what}; pass --force to overwrite it")
    directory = os.path.dirname(path) or "."
    if path.endswith(os.sep) or not os.path.isdir(directory):
        raise OutputError(path, f"directory {directory!r} does not exist")


def write_output(path: str, data: str | bytes, force: bool) -> None:
    """Write ``data`` to ``path`` (``-``: stdout), whole or not at all.

    The text goes to a new file in the target's directory (created exclusively, mode 0666 less the
    umask, or the replaced file's mode), is flushed to disk, then put in place: linked to the
    target name, which fails if the name appeared meanwhile (two writers without ``force``: one
    wins), or renamed over it with ``force``. Any failure raises :class:`OutputError` and leaves
    nothing behind. A SIGINT during the write abandons it (no file); one after the file is in place
    is held until the command has finished its answer (see :func:`command_io`).
    """
    if path == "-":
        _write_stdout(data)
        return
    check_output(path, force)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        st = os.lstat(path) if force else None
    except OSError:
        st = None
    old_mode = stat.S_IMODE(st.st_mode) if st is not None and stat.S_ISREG(st.st_mode) else None
    directory = os.path.dirname(path) or "."
    with _INTERRUPTS.hold() as interrupted:
        tmp = _create_temp(directory, os.path.basename(path), path)
        try:
            try:
                if old_mode is not None:
                    os.fchmod(tmp.fd, old_mode)
                view = memoryview(payload)
                while view:
                    view = view[os.write(tmp.fd, view) :]
                os.fsync(tmp.fd)
            finally:
                os.close(tmp.fd)
            if interrupted():
                raise KeyboardInterrupt
            _place(tmp.name, path, force)
        except OSError as e:
            _unlink(tmp.name)
            raise OutputError(path, e.strerror or str(e)) from None
        except BaseException:
            _unlink(tmp.name)
            raise
    _sync_directory(directory)


@dataclass(frozen=True)
class _Temp:
    name: str
    fd: int


def _create_temp(directory: str, base: str, path: str) -> _Temp:
    try:
        return _Temp(*create_temp(directory, base))
    except FileExistsError:
        raise OutputError(path, "cannot create a temporary file next to it") from None
    except OSError as e:
        raise OutputError(path, e.strerror or str(e)) from None


def _place(tmp: str, path: str, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if the name exists, even as a dangling link: exclusive
    except FileExistsError:
        raise OutputError(path, "it exists; pass --force to overwrite it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links here (some file systems): claim the name exclusively, then rename over
        # the claim.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise OutputError(path, "it exists; pass --force to overwrite it") from None
        os.replace(tmp, path)
        return
    _unlink(tmp)  # the file is in place: the temporary name is only tidied


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- stdout and SIGINT --------------------------------------------------------------------------
class _Interrupts:
    """SIGINT held while an output file is written, and after it is in place until the command
    ends: an interrupt then cannot report "interrupted" about a file that was written whole."""

    def __init__(self) -> None:
        self.pending = False
        self.commands: list[Any] = []  # the SIGINT handler outside each running command_io
        self.holding = False

    def _record(self, signum: int, frame: object) -> None:
        self.pending = True

    @contextmanager
    def hold(self) -> Iterator[Callable[[], bool]]:
        """Record SIGINT instead of raising it in the block; yields 'was one recorded?'."""
        if threading.current_thread() is not threading.main_thread() or self.holding:
            yield lambda: self.pending
            return
        previous = signal.getsignal(signal.SIGINT)
        self.pending, self.holding = False, True
        signal.signal(signal.SIGINT, self._record)
        try:
            yield lambda: self.pending
        except BaseException:
            self._release(previous)
            raise
        if not self.commands:  # no command to finish: the interrupt arrives now
            self._release(previous)

    def _release(self, handler: Any) -> None:
        signal.signal(signal.SIGINT, handler)
        pending, self.pending, self.holding = self.pending, False, False
        if pending and not self.commands:
            raise KeyboardInterrupt

    @contextmanager
    def command(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.commands.append(signal.getsignal(signal.SIGINT))
        try:
            yield
        finally:
            handler = self.commands.pop()
            if self.holding:  # an output was committed: a SIGINT since then is dropped
                signal.signal(signal.SIGINT, handler)
                self.pending = self.holding = False


_INTERRUPTS = _Interrupts()


@contextmanager
def command_io() -> Iterator[None]:
    """Run one command: errors writing stdout become :class:`OutputError` (exit 2), and a SIGINT
    that arrives once an output file is complete does not interrupt (the command finishes its
    answer and exits as usual)."""
    stdout = sys.stdout
    sys.stdout = _GuardedStdout(stdout)  # type: ignore[assignment,unused-ignore]
    try:
        with _INTERRUPTS.command():
            yield
            _flush_stdout()
    finally:
        sys.stdout = stdout


class _GuardedStdout:
    """stdout whose write errors (a full disk, EIO) raise OutputError; a closed pipe stays a
    BrokenPipeError (the CLI's exit 1, as for ``| head``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> Any:
        try:
            return self._stream.write(text)
        except OSError as e:
            raise _stdout_error(e, self._stream) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            raise _stdout_error(e, self._stream) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stdout_error(e: OSError, stream: Any = None) -> OSError | OutputError:
    real = sys.__stdout__
    if real is not None and (stream or getattr(sys.stdout, "_stream", sys.stdout)) is real:
        try:  # what stdout still buffers can never be written: let the exit flush go nowhere
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, real.fileno())  # type: ignore[union-attr,unused-ignore]
            os.close(fd)
        except (OSError, ValueError):
            pass
    return e if isinstance(e, BrokenPipeError) else OutputError("<stdout>", e.strerror or str(e))


def _write_stdout(data: str | bytes) -> None:
    try:
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
            sys.stdout.flush()
    except OSError as e:
        raise _stdout_error(e) from None


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except OSError as e:
        raise _stdout_error(e) from None
