"""The IOS dynamic programme (Ding et al., MLSys 2021), pure Python and independent of any device.

For one block (a small operator DAG) the programme finds the schedule of least total cost::

    cost(empty) = 0
    cost(S)     = min over endings E of S of  cost(S - E) + stage_cost(E)

where the state ``S`` is the set of operators still to schedule (closed under ancestors) and an *ending*
``E`` is a stage that may run last among ``S``: up to ``s`` mutually independent groups, each group an IOS
group (a head operator plus all its descendants still in ``S``) of at most ``r`` operators. Endings are
enumerated along a minimum chain cover: per chain, either nothing or a head among the last ``r`` operators
of the chain's part in ``S``; groups of different chains must be disjoint. The stage cost is any callable
(measured on a GPU, a CPU, or a model); it is called once per distinct stage (memoized).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .dag import Dag, Schedule, Stage, bits, group_of, members

StageCost = Callable[[Stage], float]


@dataclass
class DPResult:
    """The optimal schedule of a block, its predicted cost and how much work finding it took."""

    schedule: Schedule
    cost: float
    states: int
    stages_costed: int
    stage_costs: dict[Stage, float] = field(default_factory=dict, repr=False)


def canonical_stage(groups: list[int]) -> Stage:
    """A stage as a tuple of groups (each ascending), groups ordered by their first operator."""
    return tuple(sorted(tuple(members(g)) for g in groups))


def endings(dag: Dag, state: int, max_group: int = 3, max_groups: int = 8) -> Iterator[Stage]:
    """Every IOS ending of ``state`` (a bitmask closed under ancestors), each yielded once."""
    options: list[list[int]] = []
    for chain in dag.chains:
        part = [op for op in chain if state >> op & 1]
        heads = []
        for head in part[-max_group:]:
            g = group_of(dag, head, state)
            if g.bit_count() <= max_group:
                heads.append(g)
        if heads:
            options.append(heads)

    def extend(k: int, used: int, chosen: list[int]) -> Iterator[Stage]:
        if k == len(options):
            if chosen:
                yield canonical_stage(chosen)
            return
        yield from extend(k + 1, used, chosen)          # nothing from this chain
        if len(chosen) == max_groups:
            return
        for g in options[k]:
            if not g & used:
                chosen.append(g)
                yield from extend(k + 1, used | g, chosen)
                chosen.pop()

    yield from extend(0, 0, [])


class _Memo:
    """Stage costs, computed once each."""

    def __init__(self, cost: StageCost):
        self.cost = cost
        self.table: dict[Stage, float] = {}

    def __call__(self, stage: Stage) -> float:
        c = self.table.get(stage)
        if c is None:
            c = self.table[stage] = float(self.cost(stage))
        return c


def optimize_block(dag: Dag, cost: StageCost, max_group: int = 3, max_groups: int = 8) -> DPResult:
    """The least-cost IOS schedule of ``dag`` under ``cost`` (stages given in local operator indices)."""
    if max_group < 1 or max_groups < 1:
        raise ValueError("group size r and group count s must be at least 1")
    stage_cost = _Memo(cost)
    if dag.n == 1:  # a trivial block has one schedule: no measurement needed
        return DPResult([((0,),)], math.nan, 1, 0)
    # state -> (least cost, stages of that schedule, last stage); equal costs prefer fewer stages
    best: dict[int, tuple[float, int, Stage | None]] = {0: (0.0, 0, None)}

    def solve(state: int) -> tuple[float, int]:
        hit = best.get(state)
        if hit is not None:
            return hit[0], hit[1]
        top: tuple[float, int, Stage | None] = (math.inf, 0, None)
        for stage in endings(dag, state, max_group, max_groups):
            rest_cost, rest_stages = solve(state & ~bits(op for g in stage for op in g))
            c = rest_cost + stage_cost(stage)
            if _better(c, rest_stages + 1, top[0], top[1]):
                top = (c, rest_stages + 1, stage)
        best[state] = top
        return top[0], top[1]

    total, _ = solve(dag.all)
    schedule: Schedule = []
    state = dag.all
    while state:
        stage = best[state][2]
        assert stage is not None, "every non-empty state has an ending"
        schedule.append(stage)
        state &= ~bits(op for g in stage for op in g)
    schedule.reverse()
    return DPResult(schedule, total, len(best), len(stage_cost.table), dict(stage_cost.table))


def _better(cost: float, stages: int, top_cost: float, top_stages: int) -> bool:
    """Lower cost wins; costs equal up to rounding prefer fewer stages (fewer synchronizations)."""
    if math.isinf(top_cost):
        return True
    tol = 1e-9 * abs(top_cost)
    return cost < top_cost - tol or (cost <= top_cost + tol and stages < top_stages)


def sequential_schedule(dag: Dag) -> Schedule:
    """One operator per stage in topological order: what a framework does by default."""
    return [((i,),) for i in range(dag.n)]
