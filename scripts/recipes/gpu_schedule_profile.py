"""IOS scheduling and profiling of the paper's four SPP-Nets on a CUDA machine, in one short run.

Usage::

    python scripts/recipes/gpu_schedule_profile.py OUTDIR [--bundle PATH] [--cpu-dry-run] [--budget-s 170]

Parts (each guarded: a failure is logged to OUTDIR/errors.txt and the next part runs):

1. bundles of the presets ``original``, ``spp1``, ``spp2``, ``spp3`` (random weights, 100 x 100 chips);
2. Table 2 analogue: sequential vs IOS-optimized latency at batch 1 for each preset;
3. ``spp2``: batch sweep 1, 2, 4 ... (to 64, then while throughput rises, at most --max-batch) and the
   engines, recorded in its bundle (OUTDIR/schedule_spp2/);
4. ``spp2``: CUDA API time of the first call in a fresh process (batch 1 and 64, eager fp32: library
   loads included), then profiles of the fastest engine over 1, 2, 4 ... --profile-max
   (OUTDIR/profile_spp2/) and of eager fp32, the paper's setting (OUTDIR/profile_spp2_fp32/);
5. with --bundle: the same schedule and profile for that bundle, recorded in its manifest.

Compact tables are printed at the end and written to OUTDIR/summary.md (all numbers in summary.json).
``--cpu-dry-run`` runs every code path on the CPU with small batch sizes and the CPU cost model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from geodrain.model import PRESETS, build_model, load_bundle, save_bundle  # noqa: E402
from geodrain.model import bundle as bundle_io  # noqa: E402
from geodrain.output import write_json as write_json_atomic  # noqa: E402
from geodrain.profiling import profile_bundle  # noqa: E402
from geodrain.schedule import ScheduleOptions, schedule_bundle  # noqa: E402
from geodrain.schedule.report import fmt_stages, markdown_table, write_json  # noqa: E402

PAPER_TABLE2 = {"original": (0.512, 0.268), "spp1": (0.419, 0.379), "spp2": (0.295, 0.236),
                "spp3": (0.562, 0.427)}   # RTX A5500, ms at batch 1: sequential, IOS


class Run:
    """Runs parts under a time budget, keeps their results, logs their failures."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.budget_s, self.t0 = out, budget_s, time.perf_counter()
        self.results: dict[str, Any] = {}
        self.errors: list[str] = []
        self.timings: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def part(self, name: str, fn: Callable[[], Any], optional: bool = False) -> Any:
        if optional and self.elapsed() > self.budget_s:
            self.errors.append(f"{name}: skipped, time budget of {self.budget_s:.0f} s spent")
            print(f"[skip] {name}: over the time budget", flush=True)
            return None
        print(f"[{self.elapsed():6.1f} s] {name}", flush=True)
        t = time.perf_counter()
        try:
            value = fn()
            self.results[name] = value
            return value
        except Exception as e:  # noqa: BLE001 - one failing part must not stop the others
            msg = f"{name}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            self.errors.append(msg)
            print(f"[fail] {msg}", flush=True)
            with open(self.out / "errors.txt", "a") as fh:
                fh.write(msg + "\n" + traceback.format_exc() + "\n")
            return None
        finally:
            self.timings[name] = round(time.perf_counter() - t, 1)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


# -- parts ------------------------------------------------------------------------------------------------
def environment() -> dict:
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, sms=p.multi_processor_count, memory_gb=round(p.total_memory / 2 ** 30, 1),
                    cudnn=torch.backends.cudnn.version())
    return info


def make_bundle(preset: str, folder: Path) -> str:
    """A bundle of ``preset`` with random weights (seeded); without ONNX when the export fails."""
    torch.manual_seed(0)
    model = build_model(PRESETS[preset], context_px=0)
    dest = folder / preset
    try:
        save_bundle(model, dest, name=f"{preset}-random")
        return "with ONNX"
    except Exception as e:  # noqa: BLE001 - e.g. an exporter that cannot express the SPP pooling
        write_weights_only_bundle(model, dest, f"{preset}-random")
        return f"weights only (ONNX export failed: {type(e).__name__})"


def write_weights_only_bundle(model: torch.nn.Module, dest: Path, name: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), dest / bundle_io.WEIGHTS)
    manifest = {"format": bundle_io.FORMAT, "name": name, "arch": model.arch.to_dict(),
                "notation": model.arch.notation, "context_px": model.context_px, "window_px": 100,
                "files": {bundle_io.WEIGHTS: {"sha256": bundle_io.sha256_file(dest / bundle_io.WEIGHTS),
                                              "bytes": (dest / bundle_io.WEIGHTS).stat().st_size}}}
    write_json_atomic(dest / bundle_io.MANIFEST, manifest)
    load_bundle(dest)


def table2(bundle_dir: Path, preset: str, device: str, cost: str) -> dict:
    rep = schedule_bundle(bundle_dir / preset, device=device, batch_sizes=[1], engines=False, record=False,
                          options=ScheduleOptions(cost=cost, repeats=7), progress=False)
    b = rep.batches[0]
    return {"preset": preset, "eager_ms": b.eager_ms, "sequential_ms": b.sequential_ms,
            "optimized_ms": b.optimized_ms, "speedup": b.speedup, "outputs_equal": b.outputs_equal,
            "stages": [fmt_stages(s.stages) for s in b.blocks], "cost_model": rep.cost_model}


def sweep(bundle: Path, out: Path, device: str, cost: str, sizes: list[int] | None, max_batch: int) -> dict:
    rep = schedule_bundle(bundle, device=device, batch_sizes=sizes, max_batch=max_batch, engines=True,
                          engine_iters=10, record=True, out_dir=out, overwrite=True,
                          options=ScheduleOptions(cost=cost, repeats=5), progress=False)
    return rep.to_dict()


def cold_start(bundle: Path, device: str, batch: int) -> dict:
    """CUDA API time of the first call in a fresh process (lazy library loads included), eager fp32."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cold-start-child", str(bundle), device, str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COLD ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"child exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return json.loads(lines[-1][5:])


def cold_start_child(bundle: str, device: str, batch: str) -> int:
    rep = profile_bundle(bundle, [int(batch)], device=device, iters=2, profile_iters=2, record=False,
                         progress=False, precision="fp32", channels_last=False, cuda_graph=False)
    b = rep.batches[0]
    print("COLD " + json.dumps({"batch_size": b.batch_size, "api_cold_us": b.api_cold_us,
                                "api_cold_share": b.api_cold_share, "top_api_cold": b.top_api_cold[:8],
                                "api_share": b.api_share}), flush=True)
    return 0


def profile(bundle: Path, out: Path, device: str, sizes: list[int], record: bool, **engine: Any) -> dict:
    rep = profile_bundle(bundle, sizes, device=device, iters=10, profile_iters=5, record=record, out_dir=out,
                         overwrite=True, progress=False, **engine)
    return rep.to_dict()


# -- printing ---------------------------------------------------------------------------------------------
def tables(run: Run) -> str:
    r = run.results
    parts = [f"# IOS schedule and profile ({r.get('environment', {}).get('gpu', 'CPU')})", ""]
    rows = [r[k] for k in sorted(r) if k.startswith("table2 ") and r[k]]
    if rows:
        parts += ["## Table 2 analogue: batch 1 latency (ms)", "", markdown_table(
            ["model", "eager", "sequential", "IOS", "speedup", "paper seq / IOS (A5500)", "IOS stages"],
            [(t["preset"], t["eager_ms"], t["sequential_ms"], t["optimized_ms"], t["speedup"],
              "%.3f / %.3f" % PAPER_TABLE2[t["preset"]], "; ".join(t["stages"])) for t in rows]), ""]
    s = r.get("schedule spp2")
    if s:
        parts += [f"## spp2 batch sweep ({s['cost_model']})", "", markdown_table(
            ["batch", "eager ms", "sequential ms", "IOS ms", "speedup", "µs/chip", "chips/s", "= eager"],
            [(b["batch_size"], b["eager_ms"], b["sequential_ms"], b["optimized_ms"], b["speedup"],
              b["optimized_us_per_chip"], b["chips_per_s"], b["outputs_equal"]) for b in s["batches"]]), ""]
        parts += ["## spp2 engines", "", markdown_table(
            ["engine", "batch", "ms/chip", "chips/s", "max |Δ|", "error"],
            [(e["engine"], e["batch_size"], e.get("ms_per_chip"), e.get("chips_per_s"), e.get("max_abs_diff"),
              e.get("error", "")[:60]) for e in s["engines"]]), ""]
    for key in ("profile spp2", "profile spp2 fp32", "profile deployed"):
        p = r.get(key)
        if p:
            parts += profile_tables(key, p)
    cold = [r[k] for k in sorted(r, key=lambda k: int(k.split()[-1]) if k.startswith("cold ") else 0)
            if k.startswith("cold ") and r[k]]
    if cold:
        classes = ("launch", "sync", "library", "graph", "memcpy", "alloc", "other")
        parts += ["## Fresh process, first call, eager fp32: CUDA API time (Fig. 8 analogue)", "", markdown_table(
            ["batch", *(f"{c} %" for c in classes), "total ms", "heaviest calls (ms)"],
            [(c["batch_size"], *(c["api_cold_share"].get(k, 0.0) for k in classes),
              sum(c["api_cold_us"].values()) / 1e3,
              ", ".join(f"{n} {t / 1e3:.1f}" for n, t in c["top_api_cold"][:4])) for c in cold]), ""]
    parts += ["## Chosen", ""]
    for key in ("schedule spp2", "schedule deployed"):
        if r.get(key) and r[key].get("best_engine"):
            e = r[key]["best_engine"]
            parts.append(f"- {key}: fastest engine {e['engine']} ({e['chips_per_s']:.0f} chips/s at batch "
                         f"{e['batch_size']})")
    for key in ("profile spp2", "profile spp2 fp32", "profile deployed"):
        if r.get(key):
            parts.append(f"- {key}: batch size {r[key]['best_batch_size']} ({r[key]['selection']})")
    parts += ["", f"Part times (s): {run.timings}; total {run.elapsed():.0f} s"]
    if run.errors:
        parts += ["", "## Errors", ""] + [f"- {e}" for e in run.errors]
    return "\n".join(parts) + "\n"


def profile_tables(key: str, p: dict) -> list[str]:
    rows = [b for b in p["batches"] if not b.get("error")]
    what = "kernel" if p["mode"] == "cuda" else "CPU operator"
    out = [f"## {key}: {p['engine']}", "", markdown_table(
        ["batch", "µs/chip", "chips/s", "peak MB", "conv %", "matmul %", "pool %", "other %", f"{what} µs"],
        [(b["batch_size"], b["us_per_chip"], b["chips_per_s"], b["peak_mb"],
          *(b["compute_share"].get(c, 0.0) for c in ("conv", "matmul", "pool", "other")),
          sum(b["compute_us"].values())) for b in rows]), ""]
    if p["mode"] == "cuda":
        classes = ("launch", "sync", "library", "graph", "memcpy", "alloc", "other")
        out += ["CUDA API shares, steady state / first call (%):", "", markdown_table(
            ["batch", *classes],
            [(b["batch_size"], *(f"{b['api_share'].get(c, 0):.0f} / {b['api_cold_share'].get(c, 0):.0f}"
                                 for c in classes)) for b in rows]), ""]
    return out


# -- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output folder (created; files in it are replaced)")
    ap.add_argument("--bundle", default=None, help="also schedule and profile this bundle ('default' for the "
                                                   "deployed one) and record the results in it")
    ap.add_argument("--cpu-dry-run", action="store_true", help="exercise every part on the CPU, small sizes")
    ap.add_argument("--presets", default="original,spp1,spp2,spp3")
    ap.add_argument("--max-batch", type=int, default=512, help="cap of the IOS batch sweep")
    ap.add_argument("--profile-max", type=int, default=1024, help="largest profiled batch size")
    ap.add_argument("--budget-s", type=float, default=170.0, help="skip optional parts after this many seconds")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--cold-start-child":
        return cold_start_child(*argv[1:4])
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "errors.txt").unlink(missing_ok=True)
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print("no CUDA device: use --cpu-dry-run to exercise the code paths on the CPU", file=sys.stderr)
        return 2
    device, cost = ("cpu", "cpu") if dry else ("cuda", "cuda-graph")
    sweep_sizes = [1, 2] if dry else None
    profile_sizes = [1, 2] if dry else [2 ** k for k in range(11) if 2 ** k <= args.profile_max]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    run = Run(args.out, args.budget_s)
    run.part("environment", environment)
    tmp = Path(tempfile.mkdtemp(prefix="geodrain-ios-"))
    for preset in presets:
        run.part(f"bundle {preset}", lambda p=preset: make_bundle(p, tmp))
    for preset in presets:
        if f"bundle {preset}" in run.results:
            run.part(f"table2 {preset}", lambda p=preset: table2(tmp, p, device, cost))
    if "bundle spp2" in run.results:
        for bs in ([1] if dry else [1, 64]):
            run.part(f"cold {bs}", lambda b=bs: cold_start(tmp / "spp2", device, b), optional=True)
        run.part("schedule spp2", lambda: sweep(tmp / "spp2", args.out / "schedule_spp2", device, cost,
                                                sweep_sizes, args.max_batch))
        run.part("profile spp2", lambda: profile(tmp / "spp2", args.out / "profile_spp2", device,
                                                 profile_sizes, True))
        run.part("profile spp2 fp32", lambda: profile(tmp / "spp2", args.out / "profile_spp2_fp32", device,
                                                      profile_sizes, False, precision="fp32",
                                                      channels_last=False, cuda_graph=False), optional=True)
    if args.bundle:
        deployed = None if args.bundle == "default" else args.bundle
        run.part("schedule deployed", lambda: sweep(deployed, args.out / "schedule_deployed", device, cost,
                                                    sweep_sizes, args.max_batch), optional=True)
        run.part("profile deployed", lambda: profile(deployed, args.out / "profile_deployed", device,
                                                     profile_sizes, True), optional=True)
    text = tables(run)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    write_json(args.out / "summary.json", {"results": run.results, "errors": run.errors, "timings": run.timings})
    print(text, flush=True)
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
