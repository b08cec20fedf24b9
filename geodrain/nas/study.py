"""The persistent side of a search: one Optuna SQLite storage (``OUT/nas.db``) holding three kinds of study.

* ``efficiency-<hash>``: one trial per measured architecture (value = chips/s, the measurement in its user
  attributes); the hash names the device class and timing setup, so measurements from another GPU or another
  context size are never mixed in.
* ``training-<hash>``: one trial per trained candidate (value = validation chip AP); the hash names the
  training data and hyper-parameters. Every strategy reads this cache first, so a training is never repeated,
  also not across strategies or thresholds A.
* ``<strategy>-<hash>``: the search itself (value = e(n), the accuracy constraint ``A - a(n)`` set with
  Optuna's constraint API); the hash names the space, A, the metric and the two studies above.

Trials left RUNNING (or queued) by a killed process are marked FAIL on the next start; finished ones are
reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from ..model.arch import FC_CHOICES, K1_CHOICES, SPP_CHOICES, WIDTH_CHOICES, Arch
from .efficiency import Measurement
from .space import arch_params

DB_NAME = "nas.db"
ARCH_DISTRIBUTIONS = {"k1": CategoricalDistribution(K1_CHOICES), "spp": CategoricalDistribution(SPP_CHOICES),
                      "fc": CategoricalDistribution(FC_CHOICES), "width": CategoricalDistribution(WIDTH_CHOICES)}
HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")  # optuna >= 5


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def signature_hash(signature: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:10]


def finite_or_none(x: Any) -> Any:
    """JSON-safe floats: NaN and infinities become None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x


@dataclass
class TrainingRecord:
    """One trained candidate: a(n) = validation chip AP (NaN when the split had no positives)."""

    key: str
    ap: float
    threshold: float
    seconds: float
    val: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] | None = None
    epochs: list[dict] = field(default_factory=list)

    @property
    def score(self) -> float:
        """AP as a number to compare with A (an undefined AP counts as 0)."""
        return self.ap if math.isfinite(self.ap) else 0.0

    def to_attrs(self) -> dict[str, Any]:
        return finite_or_none(asdict(self))

    @classmethod
    def from_attrs(cls, d: dict[str, Any]) -> "TrainingRecord":
        ap = d.get("ap")
        return cls(d["key"], float(ap) if ap is not None else math.nan, float(d.get("threshold") or 0.5),
                   float(d.get("seconds") or 0.0), d.get("val") or {}, d.get("test"), d.get("epochs") or [])


def arch_from_params(params: dict[str, Any], bands: int) -> Arch:
    return Arch(int(params["k1"]), int(params["spp"]), int(params["fc"]), float(params["width"]), bands)


class SearchStore:
    """The search's SQLite storage and the studies in it."""

    def __init__(self, folder: str | Path):
        quiet_optuna()
        self.path = Path(folder) / DB_NAME
        self.storage = optuna.storages.RDBStorage(f"sqlite:///{self.path}")

    def study(self, kind: str, signature: dict[str, Any], sampler: optuna.samplers.BaseSampler | None = None
              ) -> optuna.Study:
        """Create or load the study ``<kind>-<hash of signature>``; stale RUNNING trials become FAIL."""
        name = f"{kind}-{signature_hash(signature)}"
        study = optuna.create_study(storage=self.storage, study_name=name, direction="maximize",
                                    sampler=sampler or optuna.samplers.RandomSampler(), load_if_exists=True)
        if "signature" not in study.user_attrs:
            study.set_user_attr("signature", finite_or_none(signature))
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)
        for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.tell(study.ask(), state=TrialState.FAIL)  # a queued trial that never ran
        return study

    # -- caches: one completed trial per architecture -----------------------------------------------------
    @staticmethod
    def measurements(study: optuna.Study) -> dict[str, Measurement]:
        return {t.user_attrs["key"]: Measurement.from_attrs(t.user_attrs)
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}

    @staticmethod
    def add_measurement(study: optuna.Study, arch: Arch, m: Measurement) -> None:
        study.add_trial(optuna.trial.create_trial(params=arch_params(arch), distributions=ARCH_DISTRIBUTIONS,
                                                  value=m.chips_per_s, user_attrs=m.to_attrs()))

    @staticmethod
    def trainings(study: optuna.Study) -> dict[str, TrainingRecord]:
        return {t.user_attrs["key"]: TrainingRecord.from_attrs(t.user_attrs)
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}

    @staticmethod
    def add_training(study: optuna.Study, arch: Arch, rec: TrainingRecord) -> None:
        study.add_trial(optuna.trial.create_trial(params=arch_params(arch), distributions=ARCH_DISTRIBUTIONS,
                                                  value=rec.score, user_attrs=rec.to_attrs()))


def set_accuracy_constraint(trial: optuna.Trial, min_ap: float, ap: float) -> None:
    """Feasible iff a(n) >= A, i.e. the constraint value A - a(n) <= 0 (Optuna's convention)."""
    value = min_ap - ap
    if HAS_SET_CONSTRAINT:
        trial.set_constraint("ap", value)
    trial.set_user_attr("constraint_ap", value)


def constraints_from_attrs(trial: optuna.trial.FrozenTrial) -> tuple[float]:
    """For optuna < 5, whose samplers take the constraint through ``constraints_func``."""
    return (float(trial.user_attrs.get("constraint_ap", 1.0)),)
