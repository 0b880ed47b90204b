"""The fitness cache: a program that computes what an evaluated program computed reuses its fitness.

Two keys, as in AutoML-Zero's functional-equivalence cache: the structural hash (equal for
programs equal up to names, statement order, dead code and commutativity) and the numeric
fingerprint (equal for programs that compute the same updates on fixed inputs, which also
catches algebraic equivalences such as ``x + x`` and ``2 * x``). Both are bounded LRU tables
(``size`` entries each, least recently used evicted first); an entry is a :class:`Entry`, about
200 bytes, so the default 100,000 entries per table bound the cache at about 40 MB.

Eviction only costs a re-evaluation, and the tables' order is a function of the sequence of
lookups, so a resumed search sees the same hits as an uninterrupted one.

>>> c = FitnessCache(size=2)
>>> c.put("h1", "f1", Entry(1.0, 0.5, None, 7))
>>> c.get("h1", None).id, c.get("hX", "f1").id, c.get("hY", "fY")
(7, 7, None)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """An evaluated program's fitness (``inf`` when it failed), its best lr multiplier, why it
    failed (None if it did not) and the id of the program that was evaluated."""

    fitness: float
    multiplier: float | None
    reason: str | None
    id: int


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.table: OrderedDict[str, Entry] = OrderedDict()

    def get(self, key: str) -> Entry | None:
        found = self.table.get(key)
        if found is not None:
            self.table.move_to_end(key)
        return found

    def put(self, key: str, entry: Entry) -> None:
        self.table[key] = entry
        self.table.move_to_end(key)
        while len(self.table) > self.size:
            self.table.popitem(last=False)


class FitnessCache:
    """Structural-hash and fingerprint tables, with hit counters."""

    def __init__(self, size: int = 100_000) -> None:
        self.by_hash = _LRU(size)
        self.by_fingerprint = _LRU(size)

    def get(self, digest: str, fingerprint: str | None) -> Entry | None:
        """The entry of an equal program: by structural hash, else by fingerprint (if given)."""
        found = self.by_hash.get(digest)
        if found is None and fingerprint is not None:
            found = self.by_fingerprint.get(fingerprint)
            if found is not None:
                self.by_hash.put(digest, found)
        return found

    def put(self, digest: str, fingerprint: str | None, entry: Entry) -> None:
        self.by_hash.put(digest, entry)
        if fingerprint is not None:
            self.by_fingerprint.put(fingerprint, entry)

    def __len__(self) -> int:
        return len(self.by_hash.table)
