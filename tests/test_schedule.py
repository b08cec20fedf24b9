"""IOS scheduling: the dynamic programme against brute force, fx tracing into blocks, the CPU fallback end to
end, and (with CUDA) streams inside one CUDA graph."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
import torch
from click.testing import CliRunner

from geodrain.model import PRESETS, Arch, build_model, load_bundle, save_bundle
from geodrain.schedule import (Dag, ScheduleExecutor, ScheduleOptions, endings, optimize_block, schedule_bundle,
                               sequential_schedule, trace_model, validate_schedule)
from geodrain.schedule.cost import AnalyticCost
from geodrain.schedule.dag import bits, members
from geodrain.schedule.graph import OpGraph

TINY = Arch(k1=3, spp=1, fc=128, width=0.25)


# -- brute force: an independent enumeration of the IOS schedule space -----------------------------------
def brute_force_groups(dag: Dag, state: int, r: int) -> list[int]:
    """Every IOS group in ``state``: an operator plus all its descendants left in ``state``, <= r ops."""
    groups = []
    for h in members(state):
        g = (1 << h)
        for other in members(state):
            if _reaches(dag, h, other):
                g |= 1 << other
        if g.bit_count() <= r:
            groups.append(g)
    return groups


def _reaches(dag: Dag, a: int, b: int) -> bool:
    frontier, seen = [a], set()
    while frontier:
        x = frontier.pop()
        for y in members(dag.succs[x]):
            if y == b:
                return True
            if y not in seen:
                seen.add(y)
                frontier.append(y)
    return False


def all_schedules(dag: Dag, r: int, s: int, state: int | None = None):
    """Yield every schedule (list of stages) of ``state``, built from the last stage backwards."""
    state = dag.all if state is None else state
    if state == 0:
        yield []
        return
    groups = brute_force_groups(dag, state, r)
    for k in range(1, min(s, len(groups)) + 1):
        for combo in itertools.combinations(groups, k):
            union = 0
            ok = True
            for g in combo:
                if g & union:
                    ok = False
                    break
                union |= g
            if not ok:
                continue
            stage = tuple(sorted(tuple(members(g)) for g in combo))
            for rest in all_schedules(dag, r, s, state & ~union):
                yield rest + [stage]


def random_dag(rng: random.Random, n: int, p: float) -> Dag:
    return Dag.from_edges(n, [(a, b) for a in range(n) for b in range(a + 1, n) if rng.random() < p])


def max_cost(op_cost: list[float], fork: float, sync: float):
    """Synthetic GPU-like stage cost: slowest group + per-extra-group fork/join + per-stage sync."""
    return lambda stage: max(sum(op_cost[i] for i in g) for g in stage) + fork * (len(stage) - 1) + sync


def additive_cost(op_cost: list[float], sync: float):
    """Synthetic CPU-like stage cost: every operator's cost adds up, plus a per-stage sync."""
    return lambda stage: sum(op_cost[i] for g in stage for i in g) + sync


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("model", ["max", "additive"])
def test_dp_matches_brute_force(seed: int, model: str) -> None:
    rng = random.Random(seed)
    n = rng.randint(3, 6)
    dag = random_dag(rng, n, rng.choice([0.2, 0.4, 0.6]))
    r, s = rng.choice([(3, 8), (2, 2), (1, 3), (3, 1)])
    op_cost = [rng.uniform(1.0, 10.0) for _ in range(n)]
    cost = max_cost(op_cost, rng.uniform(0, 3), rng.uniform(0, 2)) if model == "max" \
        else additive_cost(op_cost, rng.uniform(0, 2))
    calls: list = []

    def counted(stage):
        calls.append(stage)
        return cost(stage)

    res = optimize_block(dag, counted, r, s)
    validate_schedule(dag, res.schedule, r, s)
    assert math.isclose(res.cost, sum(cost(st) for st in res.schedule), rel_tol=1e-9)
    assert len(calls) == len(set(calls)), "each distinct stage is costed once (memoized)"
    best = math.inf
    count = 0
    for sched in all_schedules(dag, r, s):
        validate_schedule(dag, sched, r, s)
        best = min(best, sum(cost(st) for st in sched))
        count += 1
    assert count > 0
    assert math.isclose(res.cost, best, rel_tol=1e-9), (res.cost, best, dag.edges())


def test_endings_are_distinct_and_closed() -> None:
    rng = random.Random(42)
    for _ in range(20):
        dag = random_dag(rng, 7, 0.3)
        stages = list(endings(dag, dag.all, 3, 8))
        assert len(stages) == len(set(stages))
        for stage in stages:
            union = bits(op for g in stage for op in g)
            for op in members(union):  # nothing left behind depends on the ending
                assert not dag.descendants[op] & dag.all & ~union


def test_validate_schedule_rejects_bad_schedules() -> None:
    dag = Dag.from_edges(3, [(0, 1), (0, 2)])
    validate_schedule(dag, [((0,),), ((1,), (2,))])
    with pytest.raises(ValueError):
        validate_schedule(dag, [((1,),), ((0,),), ((2,),)])          # dependency order
    with pytest.raises(ValueError):
        validate_schedule(dag, [((0,), (1,)), ((2,),)])              # dependent groups in one stage
    with pytest.raises(ValueError):
        validate_schedule(dag, [((0,),), ((1,),)])                   # operator 2 missing
    with pytest.raises(ValueError):
        validate_schedule(dag, [((0,),), ((1,), (2,))], max_groups=1)


def test_chains_cover_and_width() -> None:
    dag = Dag.from_edges(5, [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4)])
    assert dag.width == 3
    assert sorted(op for c in dag.chains for op in c) == list(range(5))
    assert sequential_schedule(dag) == [((i,),) for i in range(5)]


# -- tracing --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_trace_presets_into_blocks(preset: str) -> None:
    model = build_model(PRESETS[preset], context_px=16).eval()
    graph = trace_model(model)
    blocks = graph.nontrivial_blocks()
    assert [b.width for b in blocks] == [3, 2]                        # SPP branches, score/box heads
    spp = blocks[0]
    assert [graph.ops[i].kind for i in spp.ops] == ["pool"] * 3 + ["concat"]
    assert sorted(op for b in graph.blocks for op in b.ops) == list(range(len(graph.ops)))
    assert sum(graph.ops[i].kind == "conv" for i in range(len(graph.ops))) == 3
    x = torch.rand(2, 4, model.input_px, model.input_px) * 255
    with torch.inference_mode():
        assert torch.equal(graph.result(graph.evaluate(x)), model(x))


def widest(stage) -> float:
    """A cost that rewards concurrency: a stage costs its longest group."""
    return float(max(len(g) for g in stage))


def _optimized(graph: OpGraph, cost) -> list:
    schedule = []
    for block in graph.blocks:
        res = optimize_block(block.dag, lambda st, b=block: cost(b.to_global(st)))
        schedule += [block.to_global(st) for st in res.schedule]
    return schedule


def test_executor_runs_parallel_schedule_on_cpu() -> None:
    model = build_model(PRESETS["spp2"], context_px=16).eval()
    graph = trace_model(model)
    x = torch.rand(3, 4, model.input_px, model.input_px) * 255
    with torch.inference_mode():
        env = graph.evaluate(x)
        analytic = _optimized(graph, AnalyticCost(graph, env))
        validate_schedule(graph.dag, analytic)
        schedule = _optimized(graph, widest)
        validate_schedule(graph.dag, schedule)
        assert max(len(stage) for stage in schedule) == 3
        assert torch.equal(ScheduleExecutor(graph, schedule, "cpu")(x), model(x))


# -- end to end on the CPU ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundles") / "tiny"
    save_bundle(build_model(TINY, context_px=0), path, inference={"cpu": {"batch_size": 3, "other": "kept"}})
    return path


def test_schedule_bundle_cpu_end_to_end(tiny_bundle, tmp_path) -> None:
    out = tmp_path / "report"
    rep = schedule_bundle(tiny_bundle, device="cpu", batch_sizes=[1, 2], out_dir=out, progress=False,
                          options=ScheduleOptions(repeats=2), engine_iters=2, record=True)
    assert rep.cost_model == "cpu" and "no CUDA" in rep.cost_note
    assert [b.batch_size for b in rep.batches] == [1, 2]
    assert all(b.outputs_equal and b.max_abs_diff == 0.0 for b in rep.batches)
    assert all(len(b.blocks) == 2 for b in rep.batches)
    for name in ("schedule.json", "schedule.md", "schedule.csv", "engines.csv"):
        assert (out / name).is_file()
    data = json.loads((out / "schedule.json").read_text())
    assert data["cost_model"] == "cpu" and len(data["batches"]) == 2
    entry = load_bundle(tiny_bundle).manifest["inference"]["cpu"]
    assert entry["measured_with"] == "geodrain schedule"
    assert entry["other"] == "kept" and entry["batch_size"] == 3      # keys of others survive
    assert entry["engine"]["backend"] in ("torch", "onnx")
    assert len(entry["schedule"]["batches"]) == 2
    with pytest.raises(FileExistsError):
        schedule_bundle(tiny_bundle, device="cpu", batch_sizes=[1], out_dir=out, progress=False)


def test_schedule_cli_cpu(tiny_bundle, tmp_path) -> None:
    from geodrain.cli import cli

    out = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["schedule", str(tiny_bundle), "--device", "cpu", "--batch-sizes", "1",
                                   "--cost", "analytic", "--no-engines", "--no-record", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert (out / "schedule.md").is_file()
    res = CliRunner().invoke(cli, ["schedule", str(tiny_bundle), "--device", "cpu", "--batch-sizes", "1",
                                   "-o", str(out), "-q"])
    assert res.exit_code != 0 and "exists" in res.output


# -- GPU ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streams_in_one_cuda_graph_match_eager() -> None:
    from geodrain.infer.runtime import GraphedCall

    dev = torch.device("cuda")
    model = build_model(PRESETS["spp2"], context_px=16).eval().to(dev)
    graph = trace_model(model)
    x = torch.rand(4, 4, model.input_px, model.input_px, device=dev) * 255
    with torch.inference_mode():
        schedule = _optimized(graph, widest)
        assert max(len(stage) for stage in schedule) == 3
        graphed = GraphedCall(ScheduleExecutor(graph, schedule, dev), x)
        y = torch.rand_like(x) * 255
        out = graphed(y).clone()
        assert torch.allclose(out, model(y), rtol=1e-4, atol=1e-5)
