"""Tasks: a run cut into tasks scores the same windows, with the same results, as one stream."""

from __future__ import annotations

import numpy as np

from conftest import noise_image, write_raster
from geodrain.detect import DetectOptions, detect
from geodrain.model.bundle import load_bundle
from geodrain.plan import plan_run
from geodrain.runner import execute, merged
from geodrain.tasks import RunSpec, Runtime, run_tasks, runtime


def _sorted(c):
    order = np.lexsort((c.xy[:, 1], c.xy[:, 0]))
    return c.xy[order], c.score[order]


def test_tasks_reproduce_one_stream(tmp_path, random_bundle):
    raster = write_raster(tmp_path / "a.tif", noise_image(600, 520, seed=4))
    bundle = load_bundle(random_bundle)
    ref = detect(raster, None, model=bundle, progress=False,
                 options=DetectOptions(threshold=0.1, stride=24, device="cpu", block_px=256))
    plan = plan_run([raster], bands=(1, 2, 3, 4), gsd_m=1.0, window_px=100, stride=24, context_px=bundle.context_px,
                    min_valid=0.5, block_px=256, task_px=256)
    try:
        assert len(plan.tasks) >= 4
        run = RunSpec(str(random_bundle), bundle.model_id, "dense", device="cpu", block_px=256, threshold=0.1,
                      stride=24, merge_radius_m=bundle.merge_radius_m)
        ex = execute(plan, run, progress=False)
        assert [o.key for o in ex.outputs] == [t.key for t in plan.tasks]
        assert ex.evaluated == ref.evaluated and plan.windows == ref.windows
        cands, crossings = merged(plan, ex.outputs, 0.1, bundle.merge_radius_m)
        assert len(ref.candidates) > 10
        for a, b in zip(_sorted(cands), _sorted(ref.candidates)):
            assert np.array_equal(a, b)
        assert len(crossings) == len(ref.crossings)
        # the model is loaded once per process and reused by every task and every later run
        loads = Runtime.loads
        assert runtime(run) is runtime(run)
        list(run_tasks(plan.tasks[:2], run))
        assert Runtime.loads == loads
    finally:
        plan.close()
