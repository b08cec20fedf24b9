"""What the experiments share: their command line, scenes generated when missing, a bundle's window candidates.

Every experiment takes a bundle (default: the deployed one), calibration and test seeds, a scene size, an
optional folder of existing scenes named ``s<seed>`` and a work folder where missing scenes are generated
(`geodrain synth`) and window candidates are cached. Results are printed as Markdown, headed by the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from benchlib import machine, table  # noqa: E402,F401  (re-exported for the experiments)

from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.merge import Candidates  # noqa: E402
from geodrain.model.bundle import Bundle, load_bundle  # noqa: E402

__all__ = ["FLOOR", "cache_name", "candidates", "machine", "parser", "scene_dir", "seeds", "setup", "table"]

FLOOR = 0.05   # window candidates are kept from this probability up (as `geodrain calibrate` keeps them)


def parser(doc: str, *, cal: str, test: str = "9001-9003", size: int = 4096, work: str) -> argparse.ArgumentParser:
    """The arguments every experiment takes; an experiment adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None, help="model bundle (default: the deployed one)")
    ap.add_argument("--cal", "--calibrate", dest="cal", default=cal,
                    help=f"calibration seeds, e.g. 8001-8004 or 8001,8002 (default {cal})")
    ap.add_argument("--test", default=test, help=f"unseen test seeds (default {test})")
    ap.add_argument("--size", type=int, default=size, help="scene side (px) of generated scenes")
    ap.add_argument("--scenes", type=Path, default=None, help="folder of existing scenes named s<seed>")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / work,
                    help="where missing scenes are generated and candidates cached")
    ap.add_argument("--tolerance", type=float, default=10.0, help="matching tolerance (m)")
    return ap


def seeds(text: str) -> list[int]:
    """"8001-8016" or "9001,9002" -> seeds."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def setup(args: argparse.Namespace) -> tuple[Bundle, list[int], list[int]]:
    """The bundle, calibration seeds and test seeds of parsed arguments (the work folder created)."""
    args.work.mkdir(parents=True, exist_ok=True)
    return load_bundle(args.bundle), seeds(args.cal), seeds(args.test)


def scene_dir(seed: int, args: argparse.Namespace) -> Path:
    """The scene of ``seed``: from --scenes when it is there, else generated under --work if missing."""
    if args.scenes is not None and (args.scenes / f"s{seed}" / "naip.tif").exists():
        return args.scenes / f"s{seed}"
    d = args.work / f"s{seed}"
    if not (d / "naip.tif").exists():
        from geodrain.synth import generate_scene

        generate_scene(d, seed=seed, size=args.size, overwrite=True)
    return d


def candidates(bundle: Bundle, folder: Path, *, stride: int | None = None, cache: Path | None = None,
               **detect_kw) -> Candidates:
    """Every window candidate >= FLOOR of one scene (what `geodrain detect` merges at a threshold), fp32 on
    the CPU as `geodrain calibrate` runs it; cached in ``cache`` (.npz) when given."""
    if cache is not None and cache.exists():
        z = np.load(cache)
        return Candidates(z["xy"], z["score"], z["size"], z["centre"], float(z["floor"]) if "floor" in z else FLOOR)
    r = detect(folder / "naip.tif", None, model=bundle, progress=False,
               options=DetectOptions(threshold=FLOOR, device="cpu", precision="fp32", stride=stride), **detect_kw)
    c = r.candidates
    if cache is not None:
        np.savez(cache, xy=c.xy, score=c.score, size=c.size, centre=c.centre, floor=c.floor)
    return c


def cache_name(args: argparse.Namespace, bundle: Bundle, seed: int, stride: int) -> Path:
    """Where the candidates of ``seed`` at ``stride`` are cached under --work."""
    tag = "" if stride == 24 else f"_stride{stride}"
    return args.work / f"windows_{bundle.model_id.replace('@', '_')}_{seed}{tag}.npz"
