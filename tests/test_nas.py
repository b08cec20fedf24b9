"""geodrain nas: the exact strategy against brute force, resuming, Optuna strategies, outputs and the CLI.

Everything runs on a 4-architecture space (2 for the CLI) of quarter-width models trained for one epoch on 24
small VOC chips made here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from conftest import write_raster
from geodrain.cli import cli
from geodrain.datasets.voc import write_annotation
from geodrain.errors import SearchError
from geodrain.model import load_bundle
from geodrain.model.arch import Arch
from geodrain.nas import DB_NAME, build_space, read_csv, search
from geodrain.nas.candidates import train_candidate
from geodrain.nas.efficiency import Measurement
from geodrain.nas.plot import pareto_front
from geodrain.nas.study import HAS_SET_CONSTRAINT
from geodrain.training import TrainConfig
from geodrain.training.data import load_training_data

SPACE_ARGS = ["--k1", "1,3", "--spp", "1,2", "--fc", "128", "--width", "0.25"]
TRAIN_ARGS = ["--epochs", "1", "--context", "0", "--batch-size", "8", "--device", "cpu",
              "--measure-batches", "1,2", "--iters", "1"]


def make_chips(folder: Path, n: int = 24, size: int = 100, contrast: float = 20.0, seed: int = 0) -> Path:
    """Noise chips; every other one has a faint square 'structure' near its centre (a VOC object)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.normal(100, 25, (4, size, size)).clip(0, 255).astype(np.uint8)
        boxes, pts = np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32)
        if i % 2 == 0:
            cx, cy = size / 2 + rng.uniform(-4, 4, 2)
            x0, y0 = int(cx - 5), int(cy - 5)
            patch = img[:, y0:y0 + 10, x0:x0 + 10].astype(np.float32) + contrast
            img[:, y0:y0 + 10, x0:x0 + 10] = patch.clip(0, 255).astype(np.uint8)
            boxes = np.array([[x0, y0, x0 + 10, y0 + 10]], np.float32)
            pts = np.array([[cx, cy]], np.float32)
        write_raster(folder / f"c{i:03d}.tif", img, tiled=False)
        write_annotation(folder / f"c{i:03d}.xml", f"c{i:03d}.tif", size, size, 4, boxes, pts,
                         ["culvert"] * len(boxes))
    return folder


@pytest.fixture(scope="module")
def chips(tmp_path_factory) -> Path:
    return make_chips(tmp_path_factory.mktemp("nas") / "chips")


@pytest.fixture(scope="module")
def data(chips):
    return load_training_data([chips], 0, seed=0)


@pytest.fixture(scope="module")
def space() -> list[Arch]:
    return build_space("paper", k1=[1, 3], spp=[1, 2], fc=[128], width=[0.25])


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    return TrainConfig(context_px=0, epochs=1, batch_size=8, device="cpu", seed=0)


def run(data, out, space, config, **kw):
    kw.setdefault("batch_sizes", (1, 2))
    kw.setdefault("iters", 1)
    return search(data, out, space=space, train_config=config, device="cpu", progress=False, **kw)


def _study(out: Path, prefix: str) -> optuna.Study:
    storage = f"sqlite:///{out / DB_NAME}"
    name = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith(prefix)]
    assert len(name) == 1
    return optuna.load_study(study_name=name[0], storage=storage)


def e_of(out: Path) -> dict[str, float]:
    return {r["key"]: float(r["efficiency"]) for r in read_csv(out / "leaderboard.csv")}


# -- the search space ---------------------------------------------------------------------------------------
def test_space_sizes_and_restrictions():
    assert len(build_space("paper")) == 175
    assert len(build_space("extended")) == 525
    assert {a.key for a in build_space("paper", k1=[1, 3], spp=[2], fc=[128, 256])} == \
        {"k1-s2-f128", "k1-s2-f256", "k3-s2-f128", "k3-s2-f256"}
    with pytest.raises(SearchError, match="first-conv kernel 2"):
        build_space("paper", k1=[2])
    with pytest.raises(SearchError, match="unknown search space"):
        build_space("huge")


def test_pareto_front_and_measurement_round_trip():
    assert pareto_front([(10, 0.9), (5, 0.95), (8, 0.8), (1, 0.99), (2, 0.9)]) == \
        [(1, 0.99), (5, 0.95), (10, 0.9)]
    m = Measurement("k1-s1-f128", 100.0, 4, 12.5, {1: 80.0, 4: 100.0, 8: math.nan}, "torch-fp32")
    back = Measurement.from_attrs(m.to_attrs())
    assert back.sweep[4] == 100.0 and math.isnan(back.sweep[8])
    assert back.efficiency("throughput") == 100.0 and back.efficiency("latency") == pytest.approx(80.0)


# -- exact == brute force ---------------------------------------------------------------------------------------
def test_exact_equals_brute_force(tmp_path, data, space, config):
    brute_ap = {a.key: train_candidate(data, config, a)[0].score for a in space}
    out = tmp_path / "exact"
    thresholds = sorted(set(brute_ap.values()), reverse=True)
    for i, ap_level in enumerate(thresholds):
        min_ap = ap_level - 1e-9
        result = run(data, out, space, config, min_ap=min_ap)
        e = e_of(out)                                  # the efficiencies the search measured (stored, reused)
        feasible = [k for k in brute_ap if brute_ap[k] >= min_ap]
        brute = max(feasible, key=lambda k: (e[k], k))  # brute force: the most efficient feasible
        assert result.winner.key == brute, (min_ap, brute_ap, e)
        # exact visits architectures in descending e(n) and stops at the first feasible one
        assert result.trials == 1 + sum(e[k] > e[brute] for k in e)
        for r in result.rows:
            if r.training is not None:
                assert r.training.score == pytest.approx(brute_ap[r.arch.key], abs=1e-9)
        if i == 0:
            assert result.trained_now == result.trials and result.measured_now == len(space)
        else:
            assert result.measured_now == 0            # measurements are never repeated
    b = load_bundle(out / "winner")
    nas = b.manifest["nas"]
    assert nas["strategy"] == "exact" and nas["arch"] == result.winner.key and nas["complete"] is True
    assert nas["min_ap"] == pytest.approx(thresholds[-1] - 1e-9) and nas["device_class"] == "cpu"
    assert b.manifest["inference"]["cpu"]["batch_size"] == nas["best_batch"]


# -- resuming -------------------------------------------------------------------------------------------------
def test_exact_resumes_after_budget_and_interruption(tmp_path, data, space, config):
    out = tmp_path / "resume"
    with pytest.raises(SearchError, match="trials budget ran out.*raise --trials"):
        run(data, out, space, config, min_ap=1.01, trials=1)
    calls = []

    def interrupted(d, c, arch):
        calls.append(arch.key)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(data, out, space, config, min_ap=1.01, trainer=interrupted)
    first = read_csv(out / "leaderboard.csv")
    with pytest.raises(SearchError, match="no feasible architecture: none of the 4"):
        run(data, out, space, config, min_ap=1.01,
            trainer=lambda d, c, arch: calls.append(arch.key) or train_candidate(d, c, arch))
    # the interrupted architecture was trained again, the finished one was not; nothing was re-measured
    assert calls[0] == calls[1] and len(calls) == 1 + 3
    trained_first = [r["key"] for r in first if r["ap"]]
    assert len(trained_first) == 1 and trained_first[0] not in calls[1:]
    study = _study(out, "exact-")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4 and optuna.trial.TrialState.FAIL in states
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done[0].number == 0 and done[0].user_attrs["key"] == trained_first[0]
    assert [t.values[0] for t in done] == sorted((t.values[0] for t in done), reverse=True)
    rows = read_csv(out / "leaderboard.csv")
    assert {r["key"]: r["efficiency"] for r in rows} == {r["key"]: r["efficiency"] for r in first}
    assert not (out / "winner").exists()


def test_optuna_strategies_resume_and_share_trainings(tmp_path, data, space, config):
    out = tmp_path / "sampled"
    first = run(data, out, space, config, strategy="random", min_ap=0.0, trials=2)
    assert first.trials == 2 and first.winner is not None
    again = run(data, out, space, config, strategy="random", min_ap=0.0, trials=3)
    assert again.trials == 3 and again.trained_now <= 1 and again.measured_now <= 1
    assert again.trained_total == first.trained_total + again.trained_now
    study = _study(out, "random-")
    assert [t.number for t in study.trials] == [0, 1, 2]
    if HAS_SET_CONSTRAINT:
        assert all(t.constraints["ap"] <= 0 for t in study.trials)
        assert study.best_trial.user_attrs["key"] == again.winner.key
    # TPE in the same folder reuses the random search's trainings and measurements
    tpe = run(data, out, space, config, strategy="tpe", min_ap=0.0, trials=3)
    assert tpe.trials == 3 and tpe.trained_total == again.trained_total + tpe.trained_now
    assert tpe.trained_now == len({t.user_attrs["key"] for t in _study(out, "tpe-").trials}
                                  - {t.user_attrs["key"] for t in study.trials})
    assert load_bundle(out / "winner").manifest["nas"]["strategy"] == "tpe"


# -- the command line -----------------------------------------------------------------------------------------
def test_cli_no_feasible_architecture(tmp_path, chips):
    out = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["nas", str(chips), "-o", str(out), "--min-ap", "1.01", "-q",
                                   "--k1", "1", "--spp", "1,2", "--fc", "128", "--width", "0.25", *TRAIN_ARGS])
    assert res.exit_code != 0
    assert "error: no feasible architecture" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    rows = read_csv(out / "leaderboard.csv")
    assert len(rows) == 2 and all(r["feasible"] == "no" and r["ap"] for r in rows)
    assert (out / "leaderboard.md").read_text().count("| C16,") == 2
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_writes_leaderboard_plot_and_bundle(tmp_path, chips):
    out = tmp_path / "cli-ok"
    res = CliRunner().invoke(cli, ["nas", str(chips), "-o", str(out), "--min-ap", "0.0", "--efficiency",
                                   "latency", *SPACE_ARGS, *TRAIN_ARGS])
    assert res.exit_code == 0, res.output
    assert "winner:" in res.output
    rows = read_csv(out / "leaderboard.csv")
    assert len(rows) == 4 and [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    win = [r for r in rows if r["status"] == "winner"]
    assert len(win) == 1 and win[0]["rank"] == "1" and win[0]["feasible"] == "yes"
    # e(n) = 1 / latency, up to the CSV's rounding (efficiency to 0.1 chips/s, which on a loaded machine running
    # at a few chips/s is more than 1e-3 of it)
    assert float(win[0]["efficiency"]) == pytest.approx(1e3 / float(win[0]["latency_ms_b1"]), rel=1e-3, abs=0.051)
    assert sum(1 for r in rows if r["ap"]) == 1                 # exact trained only the winner
    assert (out / "pareto.png").stat().st_size > 1000
    b = load_bundle(out / "winner")
    assert b.arch.key == win[0]["key"] and b.manifest["nas"]["metric"] == "latency"
