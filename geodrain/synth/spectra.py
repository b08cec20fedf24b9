"""Materials and their colours in NAIP digital numbers (R, G, B, NIR), before atmosphere and sensor.

Land cover is rendered as a per-pixel mixture of a few endmembers -- green vegetation, dry vegetation
(straw, dormant grass, residue) and soil (a dry-to-moist brightness scale) -- so that colour and NDVI vary
continuously and plausibly. Each scene jitters the endmembers; each field draws its own fractions, tint,
in-field variability and row texture from the season. Values are calibrated against real NAIP crops of
farmland (green canopy ~(55, 75, 60, 185), fallow ~(140, 130, 107, 155), see docs/synthetic.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGBN = np.ndarray

COVERS = ("corn", "soy", "wheat", "alfalfa", "pasture", "grass", "fallow", "stubble")
_COVER_P = (0.31, 0.27, 0.08, 0.06, 0.12, 0.06, 0.05, 0.05)
PIVOT_COVERS = ("corn", "soy", "alfalfa", "wheat")
_PIVOT_P = (0.5, 0.35, 0.1, 0.05)

# (fv mean, fv sd, fd mean, fd sd, moisture mean) per cover and season
_FRACTIONS = {
    "summer": {
        "corn": (0.88, 0.08, 0.03, 0.03, 0.5), "soy": (0.72, 0.16, 0.03, 0.03, 0.5),
        "wheat": (0.08, 0.06, 0.72, 0.1, 0.3), "alfalfa": (0.72, 0.2, 0.12, 0.08, 0.5),
        "pasture": (0.5, 0.12, 0.32, 0.1, 0.4), "grass": (0.58, 0.1, 0.3, 0.1, 0.4),
        "fallow": (0.06, 0.05, 0.2, 0.12, 0.35), "stubble": (0.12, 0.08, 0.6, 0.12, 0.3)},
    "late_summer": {
        "corn": (0.72, 0.1, 0.14, 0.08, 0.4), "soy": (0.78, 0.12, 0.08, 0.06, 0.45),
        "wheat": (0.1, 0.08, 0.65, 0.12, 0.3), "alfalfa": (0.6, 0.2, 0.2, 0.1, 0.4),
        "pasture": (0.32, 0.12, 0.5, 0.12, 0.3), "grass": (0.4, 0.12, 0.45, 0.12, 0.3),
        "fallow": (0.05, 0.05, 0.25, 0.12, 0.3), "stubble": (0.1, 0.06, 0.62, 0.12, 0.3)},
    "autumn": {
        "corn": (0.03, 0.03, 0.78, 0.1, 0.35), "soy": (0.03, 0.03, 0.45, 0.15, 0.4),
        "wheat": (0.3, 0.12, 0.15, 0.1, 0.5), "alfalfa": (0.45, 0.15, 0.3, 0.1, 0.4),
        "pasture": (0.15, 0.08, 0.65, 0.1, 0.3), "grass": (0.2, 0.08, 0.65, 0.1, 0.3),
        "fallow": (0.03, 0.03, 0.2, 0.1, 0.45), "stubble": (0.05, 0.04, 0.6, 0.15, 0.35)},
    "spring": {
        "corn": (0.02, 0.02, 0.32, 0.18, 0.55), "soy": (0.02, 0.02, 0.28, 0.15, 0.55),
        "wheat": (0.72, 0.12, 0.05, 0.04, 0.55), "alfalfa": (0.5, 0.15, 0.2, 0.1, 0.5),
        "pasture": (0.32, 0.12, 0.5, 0.12, 0.45), "grass": (0.35, 0.12, 0.5, 0.12, 0.45),
        "fallow": (0.03, 0.03, 0.15, 0.1, 0.6), "stubble": (0.04, 0.03, 0.55, 0.15, 0.45)},
}

WATER = {  # base colours of water types
    "dark": (24, 36, 50, 14), "turbid": (112, 102, 76, 42), "green": (48, 74, 50, 52), "silty": (96, 100, 96, 34)}
ROOFS = {
    "galvanized": (214, 218, 222, 205), "white": (232, 232, 230, 222), "dark": (68, 68, 74, 64),
    "red": (150, 62, 55, 92), "brown": (118, 96, 80, 108), "green": (78, 108, 90, 104),
    "blue": (78, 98, 138, 86), "grey": (150, 150, 150, 140)}
_ROOF_P = (0.36, 0.12, 0.16, 0.1, 0.1, 0.05, 0.03, 0.08)
SHADOW = np.array([0.42, 0.45, 0.56, 0.27], np.float32)  # sunlit -> shadow ratio (skylight is blue, no NIR)


def _c(*v) -> RGBN:
    return np.array(v, np.float32)


@dataclass
class Palette:
    """Per-scene endmembers and material colours (float32 RGBN vectors)."""

    veg: RGBN
    dry: RGBN
    soil_dry: RGBN
    soil_wet: RGBN
    tree: RGBN
    conifer: RGBN
    leafoff: RGBN
    autumn_leaf: RGBN
    gravel: RGBN
    asphalt_new: RGBN
    asphalt_old: RGBN
    concrete: RGBN
    dirt: RGBN
    sand: RGBN
    mud: RGBN
    reeds: RGBN
    riprap: RGBN
    lawn: RGBN
    season: str
    leaf_on: float

    def water(self, kind: str, tone: float) -> RGBN:
        base = _c(*WATER[kind])
        return base * np.float32(1.0 + 0.12 * tone)


def make_palette(rng: np.random.Generator, season: str) -> Palette:
    def j(v, s=0.06):
        # brightness jitter shared by the bands, and a smaller per-band (hue) jitter
        v = np.asarray(v, np.float32)
        k = np.clip(rng.normal(1.0, s), 0.8, 1.2) * np.clip(rng.normal(1.0, s / 3.0, 4), 0.9, 1.1)
        return (v * k).astype(np.float32)

    nir_boost = rng.uniform(0.9, 1.08)
    veg = j(_c(44, 76, 52, 196 * nir_boost))
    soil_dry = j(_c(160, 146, 112, 172), 0.08)
    soil_wet = j(_c(86, 78, 64, 98), 0.1)
    leaf_on = {"summer": 1.0, "late_summer": 1.0, "autumn": float(rng.uniform(0.45, 0.9)),
               "spring": float(rng.uniform(0.0, 0.35))}[season]
    return Palette(
        veg=veg,
        dry=j(_c(168, 152, 110, 164), 0.07),
        soil_dry=soil_dry,
        soil_wet=soil_wet,
        tree=j(_c(50, 70, 56, 172 * nir_boost)),
        conifer=j(_c(36, 52, 46, 112)),
        leafoff=j(_c(112, 102, 92, 104)),
        autumn_leaf=j(_c(150, 122, 62, 150)),
        gravel=j(_c(184, 171, 148, 180), 0.06),
        asphalt_new=j(_c(58, 58, 62, 56), 0.08),
        asphalt_old=j(_c(124, 121, 118, 112), 0.06),
        concrete=j(_c(206, 202, 192, 178), 0.04),
        dirt=j(_c(150, 132, 108, 142), 0.06),
        sand=j(_c(188, 176, 150, 172), 0.05),
        mud=j(_c(96, 88, 74, 88), 0.07),
        reeds=j(_c(70, 88, 60, 150)),
        riprap=j(_c(128, 127, 122, 118), 0.06),
        lawn=j(_c(70, 98, 62, 192 * nir_boost)),
        season=season,
        leaf_on=leaf_on,
    )


def field_look(rng: np.random.Generator, cover: str, season: str, *, pivot: bool = False,
               angle: float = 0.0) -> dict:
    """The look of one field: endmember fractions, moisture, tint, variability and texture parameters."""
    fvm, fvs, fdm, fds, moist = _FRACTIONS[season][cover]
    fv = float(np.clip(rng.normal(fvm, fvs), 0.0, 0.98))
    fd = float(np.clip(rng.normal(fdm, fds), 0.0, 0.95 - fv))
    row_cover = cover in ("corn", "soy", "wheat", "fallow", "stubble")
    tex = "pivot" if pivot else ("rows" if row_cover or rng.random() < 0.3 else "none")
    if tex == "rows" and rng.random() < 0.12:
        tex = "contour"
    # tilled/planted passes: visible stripes of a few metres; drilled crops fainter
    period = float(rng.choice([rng.uniform(2.0, 4.0), rng.uniform(4.0, 13.0)], p=[0.4, 0.6]))
    amp = float(rng.uniform(0.02, 0.12) if row_cover else rng.uniform(0.0, 0.05))
    if cover in ("corn", "soy") and fv > 0.85:
        amp *= 0.35
    row_angle = angle + (0.0 if rng.random() < 0.75 else np.pi / 2) + rng.normal(0, 0.01)
    tint = np.clip(rng.normal(0.0, 1.0, 4), -2.5, 2.5).astype(np.float32)
    return dict(
        cover=cover, fv=fv, fd=fd,
        moist=float(np.clip(rng.normal(moist, 0.2), 0.0, 1.0)),
        soil_tone=float(np.clip(rng.normal(0.0, 0.15), -0.32, 0.32)),
        dry_tone=float(np.clip(rng.normal(0.0, 0.08), -0.2, 0.2)),
        var_amp=float(rng.uniform(0.02, 0.09) * (1.4 if cover in ("pasture", "grass") else 1.0)),
        var_scale=float(rng.uniform(40.0, 250.0)),
        patchy=float(rng.uniform(0.0, 1.0) ** 2),
        tint=tint,
        yellow=float(rng.uniform(0.0, 0.5) if season in ("late_summer", "autumn") and cover == "soy" else
                     rng.uniform(0.0, 0.15)),
        tex=tex, row_angle=float(row_angle), row_period=period, row_amp=amp,
        row_phase=float(rng.uniform(0, 2 * np.pi)),
    )


def draw_cover(rng: np.random.Generator, pivot: bool = False) -> str:
    if pivot:
        return str(rng.choice(PIVOT_COVERS, p=_PIVOT_P))
    return str(rng.choice(COVERS, p=_COVER_P))


def draw_roof(rng: np.random.Generator) -> str:
    return str(rng.choice(list(ROOFS), p=_ROOF_P))
