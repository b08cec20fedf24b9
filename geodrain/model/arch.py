"""The SPP-Net architecture family of the paper's search space, its notation and its named presets.

An architecture is ``C64,k1,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPPk,2,1-F<fc>`` (Zhang et al. 2023, Table 1):
three conv/max-pool stages with a first-conv kernel ``k1`` in {1, 3, 5, 7, 9}, a spatial pyramid pooling
layer with levels (k, 2, 1), k in 1..5, and a fully connected layer of width F in {128, ..., 8192}:
5 x 5 x 7 = 175 architectures. The extended space multiplies the conv widths by 0.25, 0.5 or 1.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..errors import ArchitectureError

K1_CHOICES = (1, 3, 5, 7, 9)
SPP_CHOICES = (1, 2, 3, 4, 5)
FC_CHOICES = (128, 256, 512, 1024, 2048, 4096, 8192)
WIDTH_CHOICES = (0.25, 0.5, 1.0)
BASE_CHANNELS = (64, 128, 256)
FEATURE_STRIDE = 8                          # three 2 x 2 max pools
WINDOW_PX = 100                             # the paper's chip
WINDOW_CELLS = WINDOW_PX // FEATURE_STRIDE  # 12: 100 -> 50 -> 25 -> 12
GSD_M = 1.0                                 # metres per model pixel: inputs are resampled to it


@dataclass(frozen=True, order=True)
class Arch:
    """One member of the family. ``width`` scales the three conv widths (1.0 in the paper's space)."""

    k1: int = 3
    spp: int = 4
    fc: int = 1024
    width: float = 1.0
    bands: int = 4

    def __post_init__(self) -> None:
        if self.k1 not in K1_CHOICES:
            raise ArchitectureError(f"first-conv kernel {self.k1} is not one of {K1_CHOICES}")
        if self.spp not in SPP_CHOICES:
            raise ArchitectureError(f"first SPP level {self.spp} is not one of {SPP_CHOICES}")
        if self.fc not in FC_CHOICES:
            raise ArchitectureError(f"FC width {self.fc} is not one of {FC_CHOICES}")
        if self.width not in WIDTH_CHOICES:
            raise ArchitectureError(f"conv width multiplier {self.width} is not one of {WIDTH_CHOICES}")
        if self.bands < 1:
            raise ArchitectureError("an architecture needs at least one input band")

    @property
    def levels(self) -> tuple[int, int, int]:
        """SPP pyramid levels, finest first, as in the paper's ``SPPk,2,1``."""
        return (self.spp, 2, 1)

    @property
    def channels(self) -> tuple[int, int, int]:
        return tuple(max(8, int(round(c * self.width))) for c in BASE_CHANNELS)  # type: ignore[return-value]

    @property
    def spp_features(self) -> int:
        """Length of the SPP vector: channels x (k^2 + 2^2 + 1^2)."""
        return self.channels[2] * sum(k * k for k in self.levels)

    @property
    def notation(self) -> str:
        c1, c2, c3 = self.channels
        return (f"C{c1},{self.k1},1-P2,2-C{c2},3,1-P2,2-C{c3},3,1-P2,2-"
                f"SPP{self.spp},2,1-F{self.fc}")

    @property
    def key(self) -> str:
        """Short identifier used in file names and study trials: ``k3-s5-f4096`` (``-w0.5`` if scaled)."""
        base = f"k{self.k1}-s{self.spp}-f{self.fc}"
        return base if self.width == 1.0 else f"{base}-w{self.width:g}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        try:
            return cls(k1=int(d["k1"]), spp=int(d["spp"]), fc=int(d["fc"]),
                       width=float(d.get("width", 1.0)), bands=int(d.get("bands", 4)))
        except (KeyError, TypeError, ValueError) as e:
            raise ArchitectureError(f"malformed architecture record {d!r}: {e}") from None

    def conv_flops_per_px(self) -> float:
        """Multiply-adds x 2 of the conv trunk per input pixel (pools and ReLUs ignored)."""
        c1, c2, c3 = self.channels
        return 2.0 * (self.bands * c1 * self.k1 ** 2 + c1 * c2 * 9 / 4 + c2 * c3 * 9 / 16)

    def head_flops(self) -> float:
        return 2.0 * (self.spp_features * self.fc + self.fc * 5)

    def flops(self, side: int = 100) -> float:
        """FLOPs of one chip of ``side`` pixels (the paper's 100 x 100 chip by default)."""
        return self.conv_flops_per_px() * side * side + self.head_flops()


PRESETS: dict[str, Arch] = {
    "original": Arch(k1=3, spp=4, fc=1024),
    "spp1": Arch(k1=5, spp=4, fc=1024),
    "spp2": Arch(k1=3, spp=5, fc=4096),
    "spp3": Arch(k1=3, spp=5, fc=2048),
}

_KEY = re.compile(r"^k(\d+)-s(\d+)-f(\d+)(?:-w([\d.]+))?$")
_NOTATION = re.compile(
    r"^C(\d+),(\d+),1-P2,2-C(\d+),3,1-P2,2-C(\d+),3,1-P2,2-SPP(\d+),2,1-F(\d+)$")


def resolve_arch(name: str | Arch, bands: int = 4) -> Arch:
    """An :class:`Arch` from a preset name, a key (``k3-s5-f4096``) or the paper's notation."""
    if isinstance(name, Arch):
        return name
    text = str(name).strip()
    if text.lower() in PRESETS:
        a = PRESETS[text.lower()]
        return Arch(a.k1, a.spp, a.fc, a.width, bands)
    m = _KEY.match(text)
    if m:
        width = float(m.group(4)) if m.group(4) else 1.0
        return Arch(int(m.group(1)), int(m.group(2)), int(m.group(3)), width, bands)
    m = _NOTATION.match(text.replace(" ", ""))
    if m:
        c1, k1, c2, c3, spp, fc = (int(g) for g in m.groups())
        width = c1 / BASE_CHANNELS[0]
        arch = Arch(k1, spp, fc, width, bands)
        if arch.channels != (c1, c2, c3):
            raise ArchitectureError(f"conv widths {c1},{c2},{c3} are not a width multiple of 64,128,256")
        return arch
    raise ArchitectureError(
        f"unknown architecture {text!r}: use a preset ({', '.join(PRESETS)}), a key like k3-s5-f4096, "
        "or the paper's notation C64,3,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPP5,2,1-F4096")


def search_space(extended: bool = False, bands: int = 4) -> list[Arch]:
    """The paper's 175 architectures, or x3 width multipliers with ``extended``."""
    widths = WIDTH_CHOICES if extended else (1.0,)
    return [Arch(k1, spp, fc, w, bands)
            for w in widths for k1 in K1_CHOICES for spp in SPP_CHOICES for fc in FC_CHOICES]
