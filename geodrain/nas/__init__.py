"""Accuracy-constrained efficiency optimization over the paper's SPP-Net search space (section 5.4).

::

    from geodrain.nas import build_space, search
    from geodrain.training import TrainConfig

    result = search(["scenes/s1", "scenes/s2"], "runs/nas", strategy="exact", min_ap=0.97,
                    space=build_space("paper", k1=[1, 3]), train_config=TrainConfig(epochs=3))
    print(result.summary())          # the winner, its AP and e(n); result.rows is the leaderboard

Modules: :mod:`.space` (the 175 architectures and restrictions), :mod:`.efficiency` (e(n) on the device),
:mod:`.candidates` (a(n): training one candidate), :mod:`.study` (the Optuna SQLite store, resume),
:mod:`.context` (cached e(n) and a(n), budgets), :mod:`.strategies` (exact, random, tpe),
:mod:`.leaderboard`, :mod:`.plot`, :mod:`.search` (:func:`search` and its outputs).
"""

from .efficiency import METRICS, EfficiencySetup, Measurement, measure_arch
from .leaderboard import Row, read_csv
from .search import SearchResult, search
from .space import PAPER_CHOICE, SPACES, build_space, describe_space
from .strategies import STRATEGIES
from .study import DB_NAME, SearchStore, TrainingRecord

__all__ = ["search", "SearchResult", "build_space", "describe_space", "SPACES", "PAPER_CHOICE", "STRATEGIES",
           "METRICS", "EfficiencySetup", "Measurement", "measure_arch", "Row", "read_csv", "SearchStore",
           "TrainingRecord", "DB_NAME"]
