"""IOS inter-operator scheduling (Ding et al., MLSys 2021) re-implemented in PyTorch.

::

    from geodrain.schedule import schedule_bundle
    report = schedule_bundle("models/spp2", device="cuda", out_dir="runs/schedule")
    print(report.summary())

Modules: :mod:`.graph` (torch.fx tracing into operators and blocks), :mod:`.dag` (the operator DAG, chains,
schedule validation), :mod:`.ios` (the dynamic programme, device-independent), :mod:`.cost` (stage cost
models), :mod:`.executor` (streams, events, one CUDA graph), :mod:`.timing`, :mod:`.engines` (engine
timing), :mod:`.report`, :mod:`.scheduler` (per-batch orchestration and :func:`schedule_bundle`).
"""

from .cost import COST_MODELS
from .dag import Dag, Schedule, Stage, validate_schedule
from .executor import ScheduleExecutor
from .graph import Block, Op, OpGraph, trace_model
from .ios import DPResult, endings, optimize_block, sequential_schedule
from .report import BatchResult, ScheduleReport
from .scheduler import ScheduleOptions, schedule_bundle, schedule_model

__all__ = ["COST_MODELS", "Dag", "Schedule", "Stage", "validate_schedule", "ScheduleExecutor", "Block", "Op",
           "OpGraph", "trace_model", "DPResult", "endings", "optimize_block", "sequential_schedule",
           "BatchResult", "ScheduleReport", "ScheduleOptions", "schedule_bundle", "schedule_model"]
