"""User-facing errors: ``FILE:LINE:COL: error: MESSAGE`` plus an optional context line."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass
class ProgramError(Exception):
    """A problem with the user's program (or file), located at a line and column.

    >>> str(ProgramError("bad token", "p.py", 3, 7))
    'p.py:3:7: error: bad token'
    """

    message: str
    path: str = "<program>"
    line: int = 1
    col: int = 1
    source_line: str | None = None

    @classmethod
    def at(
        cls, message: str, path: str, source: str | None, line: int = 1, col: int = 1
    ) -> ProgramError:
        """An error at ``line:col`` of ``source``, carrying that source line for the caret.

        >>> ProgramError.at("oops", "p.py", "a\\nbb\\n", 2, 2).source_line
        'bb'
        """
        # Lines end at "\n" only, as the parser counts them: str.splitlines would also end one
        # at "\x0b", "\x0c", "\u2028" and others, and show the wrong line after one.
        lines = source.split("\n") if source else []
        src = lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else None
        return cls(message, path, line, col, src)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: error: {self.message}"

    def render(self) -> str:
        """The error line, then the source line with a caret under the column when known."""
        if self.source_line is None:
            return str(self)
        # One column per character: a tab or any control or separator character (form feed,
        # "\u2028", ...) is shown as a space, so the caret stays under the column.
        text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in self.source_line)
        if len(text) > 200:
            return str(self)
        return f"{self}\n  {text}\n  {' ' * _width(text[: self.col - 1])}^"


def _width(text: str) -> int:
    """Terminal columns of ``text``: wide (CJK, emoji) characters take 2, combining marks 0."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


class UsageError(Exception):
    """A bad command-line request that is not about a program's text (exit code 2)."""


class OutputError(UsageError):
    """An output that could not be written (exit code 2; nothing is left behind).

    >>> str(OutputError("out.py", "Read-only file system"))
    'cannot write out.py: Read-only file system'
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason = path, reason
