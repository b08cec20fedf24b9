"""Search strategies for max e(n) subject to a(n) >= A, each recorded as an Optuna study.

* ``exact``: e(n) is cheap (no training), so measure it for every architecture, then train in descending
  e(n) and stop at the first feasible one: the true constrained optimum with the fewest trainings. The order
  is fed to Optuna with ``enqueue_trial``.
* ``random`` (the paper's NNI Retiarii strategy) and ``tpe``: Optuna's RandomSampler / TPESampler over the
  four architecture parameters; the accuracy constraint is set on each trial, which TPE uses to model the
  feasible region. Architectures drawn again are answered from the caches, not retrained.

Budgets: ``trials`` is the total of finished trials of the study (a resumed search continues towards it), the
time budget is the context's deadline; a strategy stops before starting a trial it has no budget for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from ..errors import SearchError
from ..model.arch import Arch
from .context import SearchContext
from .space import arch_params, space_choices
from .study import HAS_SET_CONSTRAINT, arch_from_params, constraints_from_attrs, set_accuracy_constraint

STRATEGIES = ("exact", "random", "tpe")
DEFAULT_TRIALS = {"exact": None, "random": 20, "tpe": 20}


@dataclass
class Outcome:
    """How a strategy ended: ``complete`` when it ran to its end (exact: found the optimum or exhausted the
    space; random/tpe: spent its trial budget), False when a budget stopped it before."""

    complete: bool
    stopped_by: str = ""        # "", "trials" or "timeout"


def finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def is_feasible(trial: FrozenTrial) -> bool:
    return float(trial.user_attrs.get("constraint_ap", 1.0)) <= 0.0


def best_feasible(study: optuna.Study) -> FrozenTrial | None:
    """The feasible finished trial of highest e(n) (ties: the earlier trial)."""
    ok = [t for t in finished(study) if is_feasible(t)]
    return max(ok, key=lambda t: (t.value, -t.number)) if ok else None


def make_sampler(strategy: str, seed: int, n_before: int, budget: int) -> optuna.samplers.BaseSampler:
    """The strategy's sampler; re-seeded by the trials already run so a resumed search draws new points."""
    s = seed * 100_003 + n_before
    if strategy == "tpe":
        extra = {} if HAS_SET_CONSTRAINT else {"constraints_func": constraints_from_attrs}
        return optuna.samplers.TPESampler(seed=s, n_startup_trials=max(2, min(10, budget // 4)), **extra)
    return optuna.samplers.RandomSampler(seed=s)


def run_trial(ctx: SearchContext, study: optuna.Study, trial: optuna.Trial, arch: Arch) -> FrozenTrial:
    """Evaluate one trial: e(n) from the cache or measured, a(n) from the cache or trained; then tell."""
    try:
        m = ctx.measure(arch)
        rec, fresh = ctx.train(arch)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    e = m.efficiency(ctx.metric)
    set_accuracy_constraint(trial, ctx.min_ap, rec.score)
    for k, v in (("key", arch.key), ("ap", rec.score), ("efficiency", e), ("trained_now", fresh)):
        trial.set_user_attr(k, v)
    frozen = study.tell(trial, e)
    ok = "feasible" if ctx.feasible(rec) else "infeasible"
    how = f"trained in {rec.seconds:.0f} s" if fresh else "from cache"
    ctx.log(f"trial {trial.number}: {arch.key}  e {e:,.0f} chips/s  AP {rec.score:.4f}  {ok} ({how})")
    return frozen


def _bar(ctx: SearchContext, total: int | None, initial: int, desc: str) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="trial", disable=not ctx.progress)


def _postfix(bar: tqdm, study: optuna.Study) -> None:
    best = best_feasible(study)
    bar.set_postfix_str(f"best {best.user_attrs['key']} ({best.value:,.0f}/s)" if best else "no feasible yet")


def run_exact(ctx: SearchContext, study: optuna.Study, trials: int | None) -> Outcome:
    """Train in descending e(n) until the first feasible architecture."""
    if not ctx.measure_all(ctx.space):
        return Outcome(False, "timeout")
    order = sorted(ctx.space, key=lambda a: (-ctx.efficiency(a), a.key))
    choices = space_choices(ctx.space)
    visited = {t.user_attrs["key"]: t for t in finished(study)}
    with _bar(ctx, len(order), len(visited), "exact") as bar:
        for arch in order:
            done = visited.get(arch.key)
            if done is not None:
                if is_feasible(done):
                    return Outcome(True)
                continue
            if trials is not None and len(visited) >= trials:
                return Outcome(False, "trials")
            if ctx.out_of_time():
                return Outcome(False, "timeout")
            study.enqueue_trial(arch_params(arch))
            trial = study.ask()
            if suggest_arch(trial, choices, ctx.data.bands).key != arch.key:  # never: the store drops stale queues
                study.tell(trial, state=TrialState.FAIL)
                raise SearchError(f"the exact study in {ctx.store.path} is inconsistent; start the search afresh",
                                  cli_hint={"overwrite": "--overwrite"})
            visited[arch.key] = run_trial(ctx, study, trial, arch)
            bar.update()
            _postfix(bar, study)
            if is_feasible(visited[arch.key]):
                return Outcome(True)
    return Outcome(True)


def suggest_arch(trial: optuna.Trial, choices: dict[str, list], bands: int) -> Arch:
    params = {name: trial.suggest_categorical(name, values) for name, values in choices.items()}
    return arch_from_params(params, bands)


def run_sampled(ctx: SearchContext, study: optuna.Study, trials: int) -> Outcome:
    """Random or TPE sampling (the study's sampler) up to ``trials`` finished trials."""
    choices = space_choices(ctx.space)
    desc = "tpe" if isinstance(study.sampler, optuna.samplers.TPESampler) else "random"
    with _bar(ctx, trials, min(trials, len(finished(study))), desc) as bar:
        while len(finished(study)) < trials:
            if ctx.out_of_time():
                return Outcome(False, "timeout")
            trial = study.ask()
            run_trial(ctx, study, trial, suggest_arch(trial, choices, ctx.data.bands))
            bar.update()
            _postfix(bar, study)
    return Outcome(True, "trials")


def run_strategy(strategy: str) -> Callable[[SearchContext, optuna.Study, int | None], Outcome]:
    if strategy == "exact":
        return run_exact
    if strategy in ("random", "tpe"):
        return run_sampled  # type: ignore[return-value]
    raise SearchError(f"unknown strategy {strategy!r}: use {', '.join(STRATEGIES)}")
