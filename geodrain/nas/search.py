"""``search``: accuracy-constrained efficiency optimization (Zhang et al. 2023, section 5.4) end to end.

maximize e(n) over n in N subject to a(n) >= A, where e(n) is measured on the device the model is deployed on
and a(n) is the validation chip AP of n trained with the given hyper-parameters. The output folder holds::

    nas.db            Optuna storage: measurements, trainings, the strategy's study (resumable)
    leaderboard.csv   every measured/trained architecture (the analogue of the paper's Tables 1 and 2)
    leaderboard.md    the same with the search's settings
    pareto.png        AP against e(n), all measured e(n) as a rug, A, the winner and SPP-Net #2
    search.json       the result in machine-readable form
    winner/           the winning model bundle (manifest key "nas" records the search)

Running the same call again resumes: nothing measured or trained is repeated.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import torch

from .. import __version__
from ..errors import GeodrainError, SearchError
from ..infer.runtime import default_config, resolve_device
from ..model.arch import Arch
from ..model.bundle import Bundle, load_bundle, save_bundle
from ..training.data import TrainingData, load_training_data
from ..training.trainer import TrainConfig, TrainResult
from ..output import check_output_folder, write_json
from .candidates import candidate_config, train_candidate, training_signature
from .context import SearchContext, Trainer
from .efficiency import METRICS, EfficiencySetup, Measurement
from .leaderboard import Row, build_rows, write_csv, write_markdown
from .plot import plot_pareto
from .space import build_space, describe_space, space_choices
from .strategies import DEFAULT_TRIALS, STRATEGIES, Outcome, best_feasible, finished, make_sampler, run_strategy
from .study import SearchStore, TrainingRecord, finite_or_none, signature_hash

WINNER = "winner"
OUTPUTS = ("nas.db", "leaderboard.csv", "leaderboard.md", "pareto.png", "search.json", WINNER)


@dataclass
class SearchResult:
    strategy: str
    min_ap: float
    metric: str
    space: str
    winner: Arch | None
    rows: list[Row]
    complete: bool
    stopped_by: str
    trials: int                       # finished trials of the strategy's study (all runs)
    trained_now: int                  # trainings run by this call
    measured_now: int                 # efficiency measurements made by this call
    trained_total: int                # trainings in the store for these hyper-parameters
    device_class: str
    engine: str
    out: Path
    bundle: Path | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def winner_row(self) -> Row | None:
        return next((r for r in self.rows if r.winner), None)

    def to_dict(self) -> dict[str, Any]:
        w = self.winner_row
        return finite_or_none({
            "strategy": self.strategy, "min_ap": self.min_ap, "metric": self.metric, "space": self.space,
            "winner": None if w is None else {**w.values(), "arch": w.arch.to_dict()},
            "complete": self.complete, "stopped_by": self.stopped_by, "trials": self.trials,
            "trained_now": self.trained_now, "measured_now": self.measured_now,
            "trained_total": self.trained_total, "device_class": self.device_class, "engine": self.engine,
            "bundle": str(self.bundle) if self.bundle else None, "seconds": round(self.seconds, 1),
            **self.extra})

    def summary(self) -> str:
        head = (f"{self.strategy} search, A = {self.min_ap:g}, e(n) = {self.metric} on {self.device_class} "
                f"({self.engine}); {self.space}; {self.trials} trials, {self.trained_now} trained now "
                f"({self.trained_total} in total), {self.seconds:.0f} s")
        w = self.winner_row
        if w is None:
            return head + "\nno feasible architecture"
        m = w.measurement
        return (head + f"\nwinner: {w.arch.notation} ({w.arch.key})  AP {w.training.score:.4f}  "
                f"e(n) {w.efficiency:,.0f} chips/s  ({m.chips_per_s:,.0f} chips/s at batch {m.best_batch}, "
                f"{m.latency_ms:.3f} ms at batch 1)\nbundle: {self.bundle}")


# -- argument checks and the output folder ----------------------------------------------------------------
def _check_args(strategy: str, metric: str, min_ap: float, trials: int | None, timeout: float | None) -> None:
    if strategy not in STRATEGIES:
        raise SearchError(f"unknown strategy {strategy!r}: use {', '.join(STRATEGIES)}")
    if metric not in METRICS:
        raise SearchError(f"unknown efficiency metric {metric!r}: use {' or '.join(METRICS)}")
    if not math.isfinite(min_ap):
        raise SearchError("the accuracy constraint A (--min-ap) must be a number")
    if trials is not None and trials < 1:
        raise SearchError("--trials must be at least 1")
    if timeout is not None and timeout <= 0:
        raise SearchError("--timeout must be positive")


def prepare_output(out: str | Path, overwrite: bool) -> Path:
    """The output folder: created if missing, resumed if it holds a search, cleared of our files with
    ``overwrite``."""
    out = Path(out)
    check_output_folder(out, overwrite=True)  # parent exists and is writable, not a file
    out.mkdir(exist_ok=True)
    if overwrite:
        for name in OUTPUTS:
            p = out / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return out


def _is_product(archs: Sequence[Arch]) -> bool:
    c = space_choices(archs)
    return len({a.key for a in archs}) == math.prod(len(v) for v in c.values())


def _space(space: str | Sequence[Arch], bands: int) -> list[Arch]:
    if isinstance(space, str):
        return build_space(space, bands=bands)
    archs = [Arch(a.k1, a.spp, a.fc, a.width, bands) for a in space]
    if not archs:
        raise SearchError("the search space is empty")
    return list({a.key: a for a in archs}.values())


# -- the winner bundle -------------------------------------------------------------------------------------
def _bundle_holds(path: Path, arch: Arch, train_hash: str) -> Bundle | None:
    if not path.is_dir():
        return None
    try:
        b = load_bundle(path)
    except GeodrainError:
        return None
    nas = b.manifest.get("nas") or {}
    return b if nas.get("arch") == arch.key and nas.get("training_signature") == train_hash else None


def _nas_section(ctx: SearchContext, strategy: str, arch: Arch, rec: TrainingRecord, m: Measurement,
                 train_hash: str, final: dict[str, Any] | None = None) -> dict[str, Any]:
    s = ctx.setup
    return finite_or_none({
        "strategy": strategy, "min_ap": ctx.min_ap, "metric": ctx.metric, "arch": arch.key,
        "notation": arch.notation, "ap": rec.ap, "efficiency": m.efficiency(ctx.metric),
        "efficiency_unit": "chips/s", "throughput_chips_s": m.chips_per_s, "best_batch": m.best_batch,
        "latency_ms_b1": m.latency_ms, "device": s.device, "device_class": s.device_class, "engine": s.engine,
        "measurement": {"batch_sizes": list(s.batch_sizes), "iters": s.iters, "input_px": s.input_px},
        "space": describe_space(ctx.space), "training_signature": train_hash,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "geodrain_version": __version__, **(final or {})})


def save_winner(path: Path, ctx: SearchContext, arch: Arch, rec: TrainingRecord, result: TrainResult,
                nas: dict[str, Any]) -> Bundle:
    """Write the winner as a normal bundle (ready for ``geodrain detect``) with a ``nas`` manifest section."""
    m = ctx.measure(arch)
    cfg = candidate_config(ctx.template, arch, ctx.data)
    training = {"config": cfg.to_dict(), "data": ctx.data.provenance, "seconds": round(rec.seconds, 1),
                "device": cfg.device, "geodrain_version": __version__, "date": time.strftime("%Y-%m-%d")}
    metrics = {"val": result.val, "history": result.history}
    if result.test is not None:
        metrics["test"] = result.test
    engine = default_config(torch.device(ctx.setup.device), m.best_batch)
    inference = {ctx.setup.device_class: {"engine": engine.to_dict(), "batch_size": m.best_batch,
                                          "chips_per_s": m.chips_per_s, "latency_ms_b1": m.latency_ms,
                                          "measured_with": "geodrain nas", "date": time.strftime("%Y-%m-%d")}}
    return save_bundle(result.model, path, name=f"nas-{arch.key}", overwrite=True,
                       training=finite_or_none(training), metrics=finite_or_none(metrics),
                       threshold=round(result.threshold, 4), nas=nas, inference=inference)


def _incumbent_saver(ctx: SearchContext, path: Path, strategy: str, train_hash: str
                     ) -> Callable[[Arch, TrainingRecord, TrainResult, Measurement], None]:
    """Save each new incumbent at once (an interrupted search keeps its best model), unless the folder already
    holds a feasible model at least as efficient."""

    def save(arch: Arch, rec: TrainingRecord, result: TrainResult, m: Measurement) -> None:
        try:
            held = load_bundle(path).manifest.get("nas") or {} if path.is_dir() else {}
        except GeodrainError:
            held = {}
        other = ctx.trained.get(held.get("arch", ""))
        if (held.get("training_signature") == train_hash and other is not None and ctx.feasible(other)
                and held.get("arch") in ctx.measured
                and ctx.measured[held["arch"]].efficiency(ctx.metric) >= m.efficiency(ctx.metric)):
            return
        save_winner(path, ctx, arch, rec, result, _nas_section(ctx, strategy, arch, rec, m, train_hash,
                                                               {"complete": False}))

    return save


def finalize_winner(ctx: SearchContext, out: Path, strategy: str, winner: Arch | None, train_hash: str,
                    final: dict[str, Any]) -> Path | None:
    """Make ``out/winner`` hold the winner (retraining it if its weights were not kept, e.g. when its
    training came from the cache of an earlier run), or remove a stale winner of another search."""
    path = out / WINNER
    if winner is None:
        if path.is_dir() and (path / "manifest.json").is_file():
            shutil.rmtree(path, ignore_errors=True)
        return None
    rec, m = ctx.trained[winner.key], ctx.measure(winner)
    nas = _nas_section(ctx, strategy, winner, rec, m, train_hash, final)
    bundle = _bundle_holds(path, winner, train_hash)
    if bundle is not None:
        bundle.update_manifest(nas=nas)
        return path
    if ctx.incumbent is not None and ctx.incumbent[0].key == winner.key:
        result = ctx.incumbent[2]
    else:
        ctx.log(f"retraining the winner {winner.key} to write its bundle (its weights were not kept)")
        new_rec, result = ctx.trainer(ctx.data, ctx.template, winner)
        if abs(new_rec.score - rec.score) > 1e-6:
            ctx.log(f"retrained {winner.key}: AP {new_rec.score:.4f} (searched: {rec.score:.4f})")
        nas["retrained_ap"] = finite_or_none(new_rec.ap)
    save_winner(path, ctx, winner, rec, result, nas)
    return path


# -- outputs -------------------------------------------------------------------------------------------------
def _header(result: SearchResult, ctx: SearchContext) -> list[str]:
    s, t = ctx.setup, ctx.template
    unit = "chips/s at the best batch size" if result.metric == "throughput" else "1 / latency at batch 1"
    lines = [f"# Architecture search: {result.strategy}", "",
             f"maximize e(n) subject to validation chip AP a(n) >= A = {result.min_ap:g} "
             "(Zhang et al. 2023, section 5.4)", "",
             f"- space: {result.space}",
             f"- e(n): {result.metric} ({unit}) "
             f"on {s.device_class}, engine {s.engine}, batch sizes {', '.join(map(str, s.batch_sizes))}, "
             f"{s.iters} timed runs each (median), input {s.input_px} px",
             f"- training: {t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g}, context {t.context_px} px, "
             f"{t.samples_per_epoch} crops/epoch, seed {t.seed}; "
             f"data: {', '.join(map(str, ctx.data.provenance.get('sources', [])))}",
             f"- trials: {result.trials}; trained: {result.trained_total} "
             f"({result.trained_now} in the last run); complete: {'yes' if result.complete else 'no'}"
             + (f" (stopped by --{result.stopped_by})" if result.stopped_by and not result.complete else "")]
    w = result.winner_row
    lines.append(f"- winner: **{w.arch.notation}** ({w.arch.key}), AP {w.training.score:.4f}, "
                 f"e(n) {w.efficiency:,.1f} chips/s" if w else "- winner: none (no feasible architecture)")
    return lines


def write_outputs(result: SearchResult, ctx: SearchContext) -> None:
    out = result.out
    write_csv(result.rows, out / "leaderboard.csv")
    write_markdown(result.rows, out / "leaderboard.md", _header(result, ctx))
    title = (f"{result.strategy}: max e(n) s.t. AP >= {result.min_ap:g} on {result.device_class}")
    plot_pareto(result.rows, out / "pareto.png", result.min_ap, result.metric, title)
    write_json(out / "search.json", result.to_dict())


def _failure(result: SearchResult, ctx: SearchContext) -> SearchError:
    tried = [r for r in result.rows if r.training is not None]
    best = max(tried, key=lambda r: r.training.score, default=None)
    best_txt = f"best AP {best.training.score:.4f} ({best.arch.key})" if best else "nothing trained"
    if not result.complete:
        how = ("raise --trials (it counts the study's trials of all runs) to continue"
               if result.stopped_by == "trials" else "run the same command again to resume")
        return SearchError(
            f"no architecture with AP >= {result.min_ap:g} found before the --{result.stopped_by} budget ran out "
            f"({result.trials} trials, {best_txt}); {how}")
    return SearchError(
        f"no feasible architecture: none of the {len(tried)} trained reaches AP >= {result.min_ap:g} ({best_txt}); "
        "lower --min-ap, train longer (--epochs, --crops) or widen the space; leaderboard in "
        f"{result.out / 'leaderboard.md'}")


# -- the search ------------------------------------------------------------------------------------------------
def search(data: Sequence[str | Path] | TrainingData, out: str | Path, *, strategy: str = "exact",
           min_ap: float = 0.97, efficiency: str = "throughput", space: str | Sequence[Arch] = "paper",
           device: str = "auto", trials: int | None = None, timeout: float | None = None,
           train_config: TrainConfig | None = None, batch_sizes: Sequence[int] | None = None,
           iters: int | None = None, overwrite: bool = False, progress: bool = True,
           log: Callable[[str], None] | None = None, trainer: Trainer = train_candidate) -> SearchResult:
    """Find the most efficient architecture whose validation chip AP reaches ``min_ap``.

    ``data``: scene or chip folders (as for ``geodrain train``), or :class:`TrainingData` already loaded.
    ``space``: 'paper', 'extended' or a list of architectures (see :func:`build_space`). ``train_config``:
    hyper-parameters of every candidate (its ``arch`` is ignored; ``seed`` also seeds the samplers).
    ``trials``: total finished trials of the study (default: none for exact, 20 otherwise); ``timeout``:
    seconds for this call. ``trainer`` trains one candidate (default: :func:`train_candidate`). Raises
    :class:`SearchError` when no feasible architecture is found, after writing the leaderboard.
    """
    started = time.monotonic()
    _check_args(strategy, efficiency, min_ap, trials, timeout)
    out = prepare_output(out, overwrite)
    dev = resolve_device(device)
    template = replace(train_config or TrainConfig(), device=str(dev))
    tdata = _training_data(data, template)
    archs = _space(space, tdata.bands)
    if strategy != "exact" and not _is_product(archs):
        raise SearchError(f"the {strategy} strategy samples each parameter: its space must be a full product "
                          "of k1, SPP, F and width choices")
    budget = trials if trials is not None else DEFAULT_TRIALS[strategy]
    setup = EfficiencySetup.for_device(dev, template.context_px, tdata.bands, tuple(batch_sizes or ()), iters)
    ctx = _context(out, archs, min_ap, efficiency, setup, template, tdata, progress, log,
                   None if timeout is None else started + timeout)
    ctx.trainer = trainer
    study = ctx.store.study(strategy, {"strategy": strategy, "min_ap": min_ap, "metric": efficiency,
                                       "space": sorted(a.key for a in archs), "training": ctx.train_hash,
                                       "efficiency": signature_hash(setup.signature()), "seed": template.seed})
    study.sampler = make_sampler(strategy, template.seed, len(study.get_trials(deepcopy=False)), budget or 0)
    ctx.on_incumbent = _incumbent_saver(ctx, out / WINNER, strategy, ctx.train_hash)
    outcome = run_strategy(strategy)(ctx, study, budget)
    result = _result(ctx, study, strategy, outcome, out)
    result.bundle = finalize_winner(ctx, out, strategy, result.winner, ctx.train_hash,
                                    {"complete": outcome.complete, "trials": result.trials, "study": study.study_name})
    result.seconds = time.monotonic() - started
    write_outputs(result, ctx)
    if result.winner is None:
        raise _failure(result, ctx)
    return result


def _training_data(data: Sequence[str | Path] | TrainingData, template: TrainConfig) -> TrainingData:
    if isinstance(data, TrainingData):
        return data
    return load_training_data(list(data), template.context_px, val_fraction=template.val_fraction,
                              samples_per_epoch=template.samples_per_epoch, crop_windows=template.crop_windows,
                              seed=template.seed, balance_by=template.balance_by)


def _context(out: Path, archs: list[Arch], min_ap: float, metric: str, setup: EfficiencySetup,
             template: TrainConfig, tdata: TrainingData, progress: bool, log: Callable[[str], None] | None,
             deadline: float | None) -> SearchContext:
    """The store's measurement and training caches for this device and these hyper-parameters."""
    store = SearchStore(out)
    train_sig = training_signature(template, tdata)
    ctx = SearchContext(archs, min_ap, metric, setup, template, tdata, store,
                        store.study("efficiency", setup.signature()), store.study("training", train_sig),
                        deadline=deadline, progress=progress, log=log or (lambda m: None))
    ctx.train_hash = signature_hash(train_sig)
    return ctx


def _result(ctx: SearchContext, study: optuna.Study, strategy: str, outcome: Outcome, out: Path) -> SearchResult:
    best = best_feasible(study)
    winner = next((a for a in ctx.space if best is not None and a.key == best.user_attrs["key"]), None)
    trial_of = {t.user_attrs["key"]: t.number for t in finished(study)}
    rows = build_rows(ctx.space, ctx.measured, ctx.trained, ctx.metric, ctx.min_ap, ctx.template.context_px,
                      winner, trial_of)
    return SearchResult(strategy, ctx.min_ap, ctx.metric, describe_space(ctx.space), winner, rows,
                        outcome.complete, outcome.stopped_by, len(finished(study)), ctx.new_trainings,
                        ctx.new_measurements, len(ctx.trained), ctx.setup.device_class, ctx.setup.engine, out,
                        extra={"study": study.study_name, "storage": ctx.store.path.name})
