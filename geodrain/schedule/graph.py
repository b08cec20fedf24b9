"""Trace a model with torch.fx into an operator DAG and split it into IOS blocks.

An *operator* is one compute node of the fx graph together with the cheap nodes that only post-process its
single output (an activation, a flatten, a slice, a scaling by a constant): ``trunk.0+trunk.1`` is a conv
and its ReLU. Nodes that do not depend on the input's data (parameters, buffers, a dtype read off the
input) are *free*: they are evaluated when needed and add no operator.

A *block* is the run of operators between two cut points, a cut point being an operator through which
every path of the graph passes (IOS's entry/exit nodes). Blocks of one operator are trivial; the SPP layer
of an SPP-Net is a block of its three pooling branches plus their concatenation.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .dag import Dag, Stage, members

META_ATTRS = {"dtype", "shape", "device", "ndim", "is_cuda"}
META_METHODS = {"size", "dim"}
EPILOGUE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                    nn.Dropout, nn.Identity, nn.Flatten)
EPILOGUE_FUNCTIONS = {F.relu, F.relu6, F.gelu, F.silu, F.leaky_relu, torch.relu, torch.sigmoid, torch.tanh,
                      torch.flatten, torch.reshape, operator.getitem, operator.add, operator.sub,
                      operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div}
EPILOGUE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "flatten", "view", "reshape", "contiguous", "to",
                    "float", "half", "bfloat16", "squeeze", "unsqueeze", "permute", "transpose",
                    "__getitem__", "add", "sub", "mul", "div", "add_", "mul_", "clamp", "clamp_min"}


class _Tracer(fx.Tracer):
    """Buffers (the model's normalization mean/std) become graph attributes, not baked-in constants."""

    proxy_buffer_attributes = True


@dataclass
class Op:
    """One schedulable operator: a main fx node and the nodes fused after it, in order."""

    index: int
    nodes: list[fx.Node]
    kind: str

    @property
    def name(self) -> str:
        return "+".join(_node_label(n) for n in self.nodes)


@dataclass
class Block:
    """Operators between two cut points (global indices, ascending) and their induced DAG."""

    index: int
    ops: tuple[int, ...]
    dag: Dag

    @property
    def trivial(self) -> bool:
        return len(self.ops) == 1

    @property
    def width(self) -> int:
        return self.dag.width

    def to_global(self, stage: Stage) -> Stage:
        return tuple(tuple(self.ops[i] for i in group) for group in stage)


@dataclass
class OpGraph:
    """A traced model: its operators in topological order, their DAG, the blocks, and how to evaluate them."""

    module: fx.GraphModule
    ops: list[Op]
    dag: Dag
    blocks: list[Block]
    placeholders: list[fx.Node]
    prelude: list[fx.Node]          # free nodes that need only the inputs: evaluated first, once per run
    output: fx.Node
    _free: set[fx.Node] = field(default_factory=set, repr=False)
    _modules: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    # -- naming ---------------------------------------------------------------------------------------
    def op_names(self, ops: Iterable[int]) -> list[str]:
        return [self.ops[i].name for i in ops]

    def stage_names(self, stage: Stage) -> list[list[str]]:
        return [self.op_names(group) for group in stage]

    def module_of(self, node: fx.Node) -> nn.Module | None:
        return self._modules.get(node.target) if node.op == "call_module" else None

    def nontrivial_blocks(self) -> list[Block]:
        return [b for b in self.blocks if not b.trivial]

    # -- evaluation -----------------------------------------------------------------------------------
    def start(self, inputs: tuple[Any, ...]) -> dict[fx.Node, Any]:
        """A fresh environment holding the inputs and the prelude's values."""
        if len(inputs) != len(self.placeholders):
            raise TypeError(f"model takes {len(self.placeholders)} inputs, got {len(inputs)}")
        env: dict[fx.Node, Any] = dict(zip(self.placeholders, inputs))
        for node in self.prelude:
            env[node] = self.eval_node(node, env)
        return env

    def run_op(self, index: int, env: dict[fx.Node, Any]) -> None:
        for node in self.ops[index].nodes:
            env[node] = self.eval_node(node, env)

    def result(self, env: dict[fx.Node, Any]) -> Any:
        return fx.node.map_arg(self.output.args[0], lambda n: env[n])

    def evaluate(self, *inputs: Any) -> dict[fx.Node, Any]:
        """Run every operator in order; the environment of all values (a reference for stage timing)."""
        env = self.start(inputs)
        for i in range(len(self.ops)):
            self.run_op(i, env)
        return env

    def eval_node(self, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
        local: dict[fx.Node, Any] = {}

        def value(n: fx.Node) -> Any:
            if n in env:
                return env[n]
            if n not in local:  # a free node needed here: cheap, evaluated on this op's stream
                local[n] = self._apply(n, value)
            return local[n]

        return self._apply(node, value)

    def _apply(self, node: fx.Node, value) -> Any:
        args = fx.node.map_arg(node.args, value)
        kwargs = fx.node.map_arg(node.kwargs, value)
        if node.op == "call_module":
            return self._modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            obj, *rest = args
            return getattr(obj, node.target)(*rest, **kwargs)
        if node.op == "get_attr":
            return _fetch_attr(self.module, node.target)
        raise RuntimeError(f"cannot evaluate fx node {node.op} {node.name}")


# -- tracing --------------------------------------------------------------------------------------------
def trace_model(model: nn.Module) -> OpGraph:
    """The operator DAG and blocks of ``model`` (its submodules are shared, not copied)."""
    graph = _Tracer().trace(model)
    gm = fx.GraphModule(model, graph)
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    outputs = [n for n in nodes if n.op == "output"]
    free = _free_nodes(nodes, modules)
    compute = [n for n in nodes if n.op not in ("placeholder", "output") and n not in free]
    op_of = _fuse(compute, free, modules)
    ops = _make_ops(compute, op_of, modules)
    dag = Dag.from_edges(len(ops), _op_edges(ops, op_of, free))
    input_reach = max((op_of[u] for p in placeholders for u in p.users if u in op_of), default=0)
    blocks = _blocks(dag, input_reach)
    prelude = [n for n in nodes if n in free and not _has_compute_ancestor(n, free)]
    return OpGraph(gm, ops, dag, blocks, placeholders, prelude, outputs[0], free, modules)


def _fetch_attr(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


def _node_label(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    if node.op == "call_method":
        return str(node.target)
    return node.name


def _free_nodes(nodes: list[fx.Node], modules: dict[str, nn.Module]) -> set[fx.Node]:
    """Nodes whose value does not depend on the input's data (weights, buffers, dtype/shape reads)."""
    free: set[fx.Node] = set()
    for n in nodes:
        if n.op == "get_attr":
            free.add(n)
        elif n.op == "call_function" and n.target is getattr and len(n.args) > 1 and n.args[1] in META_ATTRS:
            free.add(n)
        elif n.op == "call_method" and n.target in META_METHODS:
            free.add(n)
        elif n.op in ("call_function", "call_method", "call_module"):
            inputs = n.all_input_nodes
            if inputs and all(i in free for i in inputs) and n.op != "call_module":
                free.add(n)
    return free


def _has_compute_ancestor(node: fx.Node, free: set[fx.Node]) -> bool:
    """True when a free node reads metadata of a computed value (it must wait for that value)."""
    stack, seen = list(node.all_input_nodes), set()
    while stack:
        n = stack.pop()
        if n in seen or n.op == "placeholder":
            continue
        seen.add(n)
        if n not in free:
            return True
        stack.extend(n.all_input_nodes)
    return False


def _data_inputs(node: fx.Node, free: set[fx.Node]) -> list[fx.Node]:
    """Compute nodes and placeholders that ``node`` reads, looking through free nodes (an input read only
    for its metadata, like ``x.dtype``, is not a data input)."""
    out = [n for n in node.all_input_nodes if n not in free]
    stack, seen = [n for n in node.all_input_nodes if n in free], set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        for i in n.all_input_nodes:
            if i in free:
                stack.append(i)
            elif i.op != "placeholder" and i not in out:
                out.append(i)
    return out


def _data_users(node: fx.Node, free: set[fx.Node]) -> list[fx.Node]:
    """Compute nodes that read ``node``, looking through free nodes."""
    out, stack, seen = [], list(node.users), set()
    while stack:
        n = stack.pop()
        if n in seen or n.op == "output":
            continue
        seen.add(n)
        if n in free:
            stack.extend(n.users)
        else:
            out.append(n)
    return out


def _is_epilogue(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], EPILOGUE_MODULES)
    if node.op == "call_function":
        return node.target in EPILOGUE_FUNCTIONS
    if node.op == "call_method":
        return node.target in EPILOGUE_METHODS
    return False


def _fuse(compute: list[fx.Node], free: set[fx.Node], modules: dict[str, nn.Module]) -> dict[fx.Node, int]:
    """Operator number of every compute node: an epilogue joins the operator of its only producer when it
    is that producer's only consumer."""
    op_of: dict[fx.Node, int] = {}
    count = 0
    for n in compute:
        inputs = _data_inputs(n, free)
        if (_is_epilogue(n, modules) and len(inputs) == 1 and inputs[0] in op_of
                and len(_data_users(inputs[0], free)) == 1 and not _is_output_value(inputs[0])):
            op_of[n] = op_of[inputs[0]]
        else:
            op_of[n] = count
            count += 1
    return op_of


def _is_output_value(node: fx.Node) -> bool:
    return any(u.op == "output" for u in node.users)


def _make_ops(compute: list[fx.Node], op_of: dict[fx.Node, int], modules: dict[str, nn.Module]) -> list[Op]:
    groups: dict[int, list[fx.Node]] = {}
    for n in compute:
        groups.setdefault(op_of[n], []).append(n)
    return [Op(i, groups[i], _op_kind(groups[i][0], modules)) for i in sorted(groups)]


def _op_kind(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        mod = modules[node.target]
        if isinstance(mod, nn.modules.conv._ConvNd):
            return "conv"
        if isinstance(mod, nn.Linear):
            return "matmul"
        name = type(mod).__name__.lower()
        return "pool" if "pool" in name else "other"
    target = node.target if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))
    target = str(target).lower()
    if "conv" in target:
        return "conv"
    if target in ("linear", "matmul", "mm", "addmm", "bmm", "einsum"):
        return "matmul"
    if "pool" in target:
        return "pool"
    if target in ("cat", "concat", "stack"):
        return "concat"
    return "elementwise"


def _op_edges(ops: list[Op], op_of: dict[fx.Node, int], free: set[fx.Node]) -> set[tuple[int, int]]:
    edges = set()
    for op in ops:
        for n in op.nodes:
            for src in _data_inputs(n, free):
                if src.op != "placeholder" and op_of[src] != op.index:
                    edges.add((op_of[src], op.index))
    return edges


def _blocks(dag: Dag, input_reach: int) -> list[Block]:
    """Split at cut points: operator i ends a block when no edge from before i (nor from the input)
    reaches past i."""
    reach = [max(members(dag.succs[i]), default=i) for i in range(dag.n)]
    blocks, start, running = [], 0, input_reach
    for i in range(dag.n):
        if running <= i:
            ops = tuple(range(start, i + 1))
            blocks.append(Block(len(blocks), ops, dag.subdag(ops)))
            start = i + 1
        running = max(running, reach[i])
    if start < dag.n:
        ops = tuple(range(start, dag.n))
        blocks.append(Block(len(blocks), ops, dag.subdag(ops)))
    return blocks
