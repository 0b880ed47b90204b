"""Unique Python identifiers for generated code (the idea of torch.fx's ``_Namespace``).

Python reads identifiers in NFKC normal form (``𝔤`` is ``g``, ``ﬁ`` is ``fi``), so the names
handed out are NFKC-normalised and unique as such: two program names that Python would fold
together get two distinct identifiers.

>>> ns = Namespace(reserved=("torch",))
>>> ns.name("m.2"), ns.name("m.3"), ns.name("torch"), ns.name("lambda"), ns.name("%4")
('m', 'm_1', 'torch_1', 'lambda_1', 't')
>>> ns.name("𝔪"), ns.name("ﬁ"), ns.name("fi")
('m_2', 'fi', 'fi_1')
>>> Namespace().name("flat")  # by default, the emitted class's keywords are taken
'flat_1'
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

# The keyword-only arguments of every emitted class's constructor: (name, annotation, default).
CLASS_KEYWORDS = (
    ("maximize", "bool", "False"),
    ("foreach", "bool | None", "None"),
    ("fused", "bool | None", "None"),
    ("state_dtype", "torch.dtype | None", "None"),
    ("flat", "bool", "False"),
    ("differentiable", "bool", "False"),
    ("capturable", "bool", "False"),
)

# Names the generated module itself defines or uses at module or function level, and the
# constructor's keywords (a hyper must not shadow one).
RESERVED = frozenset(
    {
        *(name for name, _, _ in CLASS_KEYWORDS),
        "types",
        "warnings",
        "Iterator",
        "Mapping",
        "COMPILE_OPTIONS",
        "BLOCK",
        "FUSED_MIN_NUMEL",
        "MIXED_DTYPE_OPTIONS",
        "rest",
        "kind",
        "error",
        "index",
        "buffers",
        "set_to_none",
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
    """A Python identifier close to ``hint`` in NFKC form: SSA suffixes dropped, other characters
    replaced.

    >>> identifier("update.3"), identifier("%12"), identifier("β1"), identifier("𝔤")
    ('update', 't', 'β1', 'g')
    """
    base = hint.split(".", 1)[0] if not hint.startswith("%") else "t"
    base = re.sub(r"\W", "_", unicodedata.normalize("NFKC", base)) or "t"
    if not base.isidentifier():  # a digit, or a character allowed only inside an identifier, first
        base = "v_" + base
    return base


class Namespace:
    """Hands out identifiers that are unique, not keywords, not builtins and not reserved."""

    def __init__(self, reserved: tuple[str, ...] | frozenset[str] = RESERVED) -> None:
        self._taken: set[str] = {unicodedata.normalize("NFKC", n) for n in reserved}
        self._last: dict[str, int] = {}  # base -> the last suffix handed out (names only grow)

    def name(self, hint: str) -> str:
        """A fresh identifier for ``hint`` (``m``, then ``m_1``, ``m_2``...)."""
        base = identifier(hint)
        n = self._last.get(base, 0)  # every smaller suffix is taken: linear, not quadratic
        candidate = base if n == 0 else f"{base.lstrip('_') or 't'}_{n}"
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
        self._last[base] = n
        return candidate

    def reserve(self, name: str) -> None:
        """Mark ``name`` as taken (a name chosen elsewhere)."""
        self._taken.add(unicodedata.normalize("NFKC", name))
