"""A small operator DAG with bitmask sets, its minimum chain cover, and schedule validation.

Operators are numbered ``0..n-1`` in a topological order (every edge goes from a lower to a higher index).
Sets of operators are Python ints used as bitmasks, which keeps the IOS dynamic programme's states cheap
to hash. A *schedule* is a list of *stages* run one after another; a stage is a tuple of *groups* run
concurrently; a group is a tuple of operators run in order (IOS, Ding et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

Group = tuple[int, ...]
Stage = tuple[Group, ...]
Schedule = list[Stage]


def bits(ops: Iterable[int]) -> int:
    """The bitmask of a set of operator indices."""
    m = 0
    for i in ops:
        m |= 1 << i
    return m


def members(mask: int) -> list[int]:
    """The operator indices of a bitmask, ascending (so topologically ordered)."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


@dataclass(frozen=True)
class Dag:
    """``n`` operators in topological order; ``succs[i]`` is the bitmask of i's direct successors."""

    n: int
    succs: tuple[int, ...]

    @classmethod
    def from_edges(cls, n: int, edges: Iterable[tuple[int, int]]) -> "Dag":
        succ = [0] * n
        for a, b in edges:
            if not 0 <= a < b < n:
                raise ValueError(f"edge {a}->{b} is not forward in a topological order of {n} operators")
            succ[a] |= 1 << b
        return cls(n, tuple(succ))

    @cached_property
    def preds(self) -> tuple[int, ...]:
        pred = [0] * self.n
        for a in range(self.n):
            for b in members(self.succs[a]):
                pred[b] |= 1 << a
        return tuple(pred)

    @cached_property
    def descendants(self) -> tuple[int, ...]:
        """Bitmask of every operator reachable from i (i excluded)."""
        desc = [0] * self.n
        for a in reversed(range(self.n)):
            d = self.succs[a]
            for b in members(self.succs[a]):
                d |= desc[b]
            desc[a] = d
        return tuple(desc)

    @property
    def all(self) -> int:
        return (1 << self.n) - 1

    def edges(self) -> list[tuple[int, int]]:
        return [(a, b) for a in range(self.n) for b in members(self.succs[a])]

    def independent(self, a: int, b: int) -> bool:
        """True when no operator of set ``a`` reaches one of set ``b`` or the reverse (bitmasks)."""
        reach_a = reach_b = 0
        for i in members(a):
            reach_a |= self.descendants[i]
        for i in members(b):
            reach_b |= self.descendants[i]
        return not (reach_a & b) and not (reach_b & a)

    @cached_property
    def chains(self) -> tuple[tuple[int, ...], ...]:
        """A minimum cover of the operators by disjoint chains (Dilworth, via bipartite matching).

        Consecutive operators of a chain are connected by a path, not necessarily by one edge. The number
        of chains is the DAG's width (its largest set of mutually independent operators).
        """
        match_next: dict[int, int] = {}   # u -> v: v follows u in its chain
        match_prev: dict[int, int] = {}

        def augment(u: int, seen: set[int]) -> bool:
            for v in members(self.descendants[u]):
                if v in seen:
                    continue
                seen.add(v)
                if v not in match_prev or augment(match_prev[v], seen):
                    match_next[u] = v
                    match_prev[v] = u
                    return True
            return False

        for u in range(self.n):
            augment(u, set())
        chains = []
        for start in range(self.n):
            if start in match_prev:
                continue
            chain = [start]
            while chain[-1] in match_next:
                chain.append(match_next[chain[-1]])
            chains.append(tuple(chain))
        return tuple(chains)

    @property
    def width(self) -> int:
        return len(self.chains)

    def subdag(self, ops: Sequence[int]) -> "Dag":
        """The DAG induced on ``ops`` (ascending), renumbered 0..len(ops)-1."""
        index = {op: i for i, op in enumerate(ops)}
        edges = [(index[a], index[b]) for a in ops for b in members(self.succs[a]) if b in index]
        return Dag.from_edges(len(ops), edges)


def group_of(dag: Dag, head: int, state: int) -> int:
    """IOS group of ``head`` in state ``state``: the head plus its descendants still unscheduled."""
    return (1 << head) | (dag.descendants[head] & state)


def validate_schedule(dag: Dag, schedule: Schedule, max_group: int | None = None,
                      max_groups: int | None = None, ops: int | None = None) -> None:
    """Raise ValueError unless ``schedule`` runs every operator of ``ops`` (default: all) exactly once,
    each operator after its predecessors, with groups of a stage mutually independent and groups
    internally in topological order."""
    target = dag.all if ops is None else ops
    done = 0
    for k, stage in enumerate(schedule):
        if not stage:
            raise ValueError(f"stage {k} is empty")
        if max_groups is not None and len(stage) > max_groups:
            raise ValueError(f"stage {k} has {len(stage)} groups (> {max_groups})")
        masks = []
        for group in stage:
            if not group:
                raise ValueError(f"stage {k} has an empty group")
            if max_group is not None and len(group) > max_group:
                raise ValueError(f"stage {k} has a group of {len(group)} operators (> {max_group})")
            if list(group) != sorted(group):
                raise ValueError(f"group {group} of stage {k} is not in topological order")
            masks.append(bits(group))
        stage_mask = 0
        for m in masks:
            if m & stage_mask or m & done:
                raise ValueError(f"stage {k} schedules an operator twice")
            stage_mask |= m
        for i, a in enumerate(masks):
            for b in masks[i + 1:]:
                if not dag.independent(a, b):
                    raise ValueError(f"stage {k} runs dependent groups concurrently")
        for op in members(stage_mask):
            outside = dag.preds[op] & ~stage_mask & target
            if outside & ~done:
                raise ValueError(f"operator {op} in stage {k} runs before one of its predecessors")
        done |= stage_mask
    if done != target:
        raise ValueError(f"schedule leaves operators {members(target & ~done)} unscheduled "
                         f"or runs {members(done & ~target)} that are not in the block")
