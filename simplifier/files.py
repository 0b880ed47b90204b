"""Writing files the way every part of the toolkit does: a new file in the target's directory,
created exclusively with mode 0666 less the umask (the user's umask decides, as for any tool),
then put in place, so that a reader never sees half a file.

:func:`create_temp` is the shared first step (the command line's ``-o`` writer,
:func:`simplifier.cli.common.write_output`, adds exclusive placing and its error messages);
:func:`write_atomic` is the whole write for files a library call owns (a search's output folder).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(d / "x.txt", b"one")
>>> (d / "x.txt").read_bytes(), [p.name for p in d.iterdir()]
(b'one', ['x.txt'])
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_temp(directory: str | Path, base: str) -> tuple[str, int]:
    """A new, exclusively created file ``.BASE.RANDOM.tmp`` in ``directory``: its name and an
    open write descriptor. Mode 0666: the kernel applies the umask. Raises OSError
    (FileExistsError only if 100 random names were all taken)."""
    for _ in range(100):
        name = os.path.join(directory, f".{base[:100]}.{secrets.token_hex(4)}.tmp")
        try:
            return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file in {directory}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file flushed to disk and a rename (never
    half a file; an existing file is replaced)."""
    name, fd = create_temp(path.parent, path.name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
