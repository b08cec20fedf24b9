"""The search space of an architecture search: the paper's 175 architectures, the extended space with conv
width multipliers, or any restriction of either (``k1=[1, 3], spp=[1, 2], fc=[128]``), and the static
figures of an architecture (parameters, FLOPs, preset name) that the leaderboard reports."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import SearchError
from ..model.arch import FC_CHOICES, K1_CHOICES, PRESETS, SPP_CHOICES, WIDTH_CHOICES, Arch
from ..model.sppnet import WINDOW_PX, build_model

SPACES = ("paper", "extended")
PAPER_CHOICE = PRESETS["spp2"]          # the architecture the paper selected (SPP-Net #2)
PRESET_LABELS = {"original": "original SPP-Net", "spp1": "SPP-Net #1", "spp2": "SPP-Net #2",
                 "spp3": "SPP-Net #3"}


def _restrict(name: str, allowed: Sequence, chosen: Sequence | None) -> tuple:
    if not chosen:
        return tuple(allowed)
    bad = [c for c in chosen if c not in allowed]
    if bad:
        raise SearchError(f"{name} {', '.join(map(str, bad))} is not in the search space "
                          f"({', '.join(map(str, allowed))})")
    return tuple(sorted(set(chosen)))


def build_space(space: str = "paper", *, k1: Sequence[int] | None = None, spp: Sequence[int] | None = None,
                fc: Sequence[int] | None = None, width: Sequence[float] | None = None,
                bands: int = 4) -> list[Arch]:
    """Architectures of ``space`` ('paper': 175, 'extended': x3 conv widths), restricted to the given choices.

    ``width`` may pick multipliers of the extended space even with 'paper' (e.g. ``width=[0.25]`` for a
    cheap test space).
    """
    if space not in SPACES:
        raise SearchError(f"unknown search space {space!r}: use {' or '.join(SPACES)}")
    widths = WIDTH_CHOICES if space == "extended" else (1.0,)
    choices = (_restrict("first-conv kernel", K1_CHOICES, k1), _restrict("first SPP level", SPP_CHOICES, spp),
               _restrict("FC width", FC_CHOICES, fc),
               _restrict("conv width multiplier", WIDTH_CHOICES, width) if width else widths)
    return [Arch(a, s, f, w, bands) for w in choices[3] for a in choices[0] for s in choices[1]
            for f in choices[2]]


def space_choices(archs: Sequence[Arch]) -> dict[str, list]:
    """The distinct values of each searched parameter, for samplers that pick one value per parameter."""
    return {"k1": sorted({a.k1 for a in archs}), "spp": sorted({a.spp for a in archs}),
            "fc": sorted({a.fc for a in archs}), "width": sorted({a.width for a in archs})}


def arch_params(arch: Arch) -> dict:
    """An architecture as the parameters of a study trial."""
    return {"k1": arch.k1, "spp": arch.spp, "fc": arch.fc, "width": arch.width}


def describe_space(archs: Sequence[Arch]) -> str:
    """``k1 {1,3} x SPP {1,2} x F {128} x width {0.25}: 4 architectures``."""
    c = space_choices(archs)
    parts = [f"k1 {{{','.join(map(str, c['k1']))}}}", f"SPP {{{','.join(map(str, c['spp']))}}}",
             f"F {{{','.join(map(str, c['fc']))}}}", f"width {{{','.join(f'{w:g}' for w in c['width'])}}}"]
    return " x ".join(parts) + f": {len(archs)} architectures"


def parameter_count(arch: Arch, context_px: int = 0) -> int:
    """Trainable parameters, counted on a model built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = build_model(arch, context_px)
    return int(sum(p.numel() for p in model.parameters()))


def gflop_per_chip(arch: Arch, context_px: int = 0) -> float:
    """GFLOP of one chip as the deployed model sees it (the 100 px window plus its context)."""
    return arch.flops(WINDOW_PX + 2 * context_px) / 1e9


def preset_label(arch: Arch) -> str:
    """The paper's name of an architecture ('SPP-Net #2' ...) or ''."""
    for name, preset in PRESETS.items():
        if (preset.k1, preset.spp, preset.fc, preset.width) == (arch.k1, arch.spp, arch.fc, arch.width):
            return PRESET_LABELS.get(name, name)
    return ""


def is_paper_choice(arch: Arch) -> bool:
    return (arch.k1, arch.spp, arch.fc, arch.width) == (PAPER_CHOICE.k1, PAPER_CHOICE.spp, PAPER_CHOICE.fc,
                                                        PAPER_CHOICE.width)
