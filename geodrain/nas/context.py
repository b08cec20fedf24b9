"""What every strategy works through: e(n) and a(n) of an architecture, each measured or trained at most once
(cached in the store), a time budget, and the incumbent (best feasible model trained in this run)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import optuna
from tqdm import tqdm

from ..model.arch import Arch
from ..training.data import TrainingData
from ..training.trainer import TrainConfig, TrainResult
from .candidates import train_candidate
from .efficiency import EfficiencySetup, Measurement, measure_arch
from .study import SearchStore, TrainingRecord

Incumbent = Callable[[Arch, TrainingRecord, TrainResult, Measurement], None]
Trainer = Callable[[TrainingData, TrainConfig, Arch], "tuple[TrainingRecord, TrainResult]"]
"""Trains one candidate: (data, hyper-parameters, architecture) -> (its record, its result); the default is
:func:`geodrain.nas.candidates.train_candidate`."""


@dataclass
class SearchContext:
    space: list[Arch]
    min_ap: float
    metric: str
    setup: EfficiencySetup
    template: TrainConfig
    data: TrainingData
    store: SearchStore
    efficiency_study: optuna.Study
    training_study: optuna.Study
    deadline: float | None = None
    progress: bool = True
    log: Callable[[str], None] = lambda m: None
    on_incumbent: Incumbent | None = None
    trainer: Trainer = train_candidate
    measured: dict[str, Measurement] = field(default_factory=dict)
    trained: dict[str, TrainingRecord] = field(default_factory=dict)
    new_measurements: int = 0
    new_trainings: int = 0
    incumbent: tuple[Arch, TrainingRecord, TrainResult] | None = None
    train_hash: str = ""

    def __post_init__(self) -> None:
        self.measured = SearchStore.measurements(self.efficiency_study)
        self.trained = SearchStore.trainings(self.training_study)

    # -- budgets ------------------------------------------------------------------------------------------
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    # -- e(n) -----------------------------------------------------------------------------------------------
    def measure(self, arch: Arch) -> Measurement:
        m = self.measured.get(arch.key)
        if m is None:
            m = measure_arch(arch, self.setup)
            SearchStore.add_measurement(self.efficiency_study, arch, m)
            self.measured[arch.key] = m
            self.new_measurements += 1
        return m

    def efficiency(self, arch: Arch) -> float:
        return self.measure(arch).efficiency(self.metric)

    def measure_all(self, archs: Sequence[Arch]) -> bool:
        """Measure every architecture not measured yet; False if the time budget ran out first."""
        todo = [a for a in archs if a.key not in self.measured]
        bar = tqdm(total=len(archs), initial=len(archs) - len(todo), desc="efficiency", unit="arch",
                   disable=not self.progress or not todo, leave=False)
        with bar:
            for arch in todo:
                if self.out_of_time():
                    return False
                bar.set_postfix_str(arch.key)
                self.measure(arch)
                bar.update()
        return True

    # -- a(n) -----------------------------------------------------------------------------------------------
    def feasible(self, rec: TrainingRecord) -> bool:
        return rec.score >= self.min_ap

    def train(self, arch: Arch) -> tuple[TrainingRecord, bool]:
        """The training record of ``arch`` and whether it was trained now (False: from the cache)."""
        rec = self.trained.get(arch.key)
        if rec is not None:
            return rec, False
        rec, result = self.trainer(self.data, self.template, arch)
        SearchStore.add_training(self.training_study, arch, rec)
        self.trained[arch.key] = rec
        self.new_trainings += 1
        self._consider_incumbent(arch, rec, result)
        return rec, True

    def _consider_incumbent(self, arch: Arch, rec: TrainingRecord, result: TrainResult) -> None:
        """Keep the model of the most efficient feasible candidate trained in this run, and no other."""
        if not self.feasible(rec):
            return
        if self.incumbent is not None and self.efficiency(self.incumbent[0]) >= self.efficiency(arch):
            return
        self.incumbent = (arch, rec, result)
        if self.on_incumbent is not None:
            self.on_incumbent(arch, rec, result, self.measure(arch))
