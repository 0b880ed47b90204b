"""Unique Python identifiers for generated code (the idea of torch.fx's ``_Namespace``).

>>> ns = Namespace(reserved=("torch",))
>>> ns.name("m.2"), ns.name("m.3"), ns.name("torch"), ns.name("lambda"), ns.name("%4")
('m', 'm_1', 'torch_1', 'lambda_1', 't')
"""

from __future__ import annotations

import builtins
import keyword
import re

# Names the generated module itself defines or uses at module or function level.
RESERVED = frozenset(
    {
        "torch",
        "Tensor",
        "Callable",
        "annotations",
        "self",
        "cls",
        "group",
        "params",
        "grads",
        "states",
        "per_param",
        "state",
        "closure",
        "loss",
        "maximize",
        "foreach",
        "fused",
        "state_dtype",
        "defaults",
        "kernel",
        "large",
        "small",
        "parts",
        "numbers",
        "reduced",
        "idx",
        "steps",
        "device",
        "dtype",
        "key",
        "min_numel",
        "scalars",
        "path",
        "by_step",
        "values",
        "reduce",
        "name",
    }
)
_BUILTINS = frozenset(dir(builtins))


def identifier(hint: str) -> str:
    """A Python identifier close to ``hint``: SSA suffixes dropped, other characters replaced.

    >>> identifier("update.3"), identifier("%12"), identifier("β1")
    ('update', 't', 'β1')
    """
    base = hint.split(".", 1)[0] if not hint.startswith("%") else "t"
    base = re.sub(r"\W", "_", base) or "t"
    if base[0].isdigit():
        base = "v_" + base
    return base


class Namespace:
    """Hands out identifiers that are unique, not keywords, not builtins and not reserved."""

    def __init__(self, reserved: tuple[str, ...] | frozenset[str] = RESERVED) -> None:
        self._taken: set[str] = set(reserved)

    def name(self, hint: str) -> str:
        """A fresh identifier for ``hint`` (``m``, then ``m_1``, ``m_2``...)."""
        base = identifier(hint)
        candidate = base
        n = 0
        while (
            candidate in self._taken
            or keyword.iskeyword(candidate)
            or keyword.issoftkeyword(candidate)
            or candidate in _BUILTINS
            or candidate.startswith("_")
        ):
            n += 1
            candidate = f"{base.lstrip('_') or 't'}_{n}"
        self._taken.add(candidate)
        return candidate

    def reserve(self, name: str) -> None:
        """Mark ``name`` as taken (a name chosen elsewhere)."""
        self._taken.add(name)
