"""Scene-wide parameters, all drawn once from the scene's random generator.

Everything that varies per scene (location, season, sun, grid orientation, land-use mix, terrain, and the
atmosphere/sensor model) lives in :class:`SceneParams` so that it can be written to ``scene.json`` and so
that the later stages never draw scene-level randomness of their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SECTION_M = 1609.344  # one mile: the PLSS section
SEASONS = ("summer", "late_summer", "autumn", "spring")
_SEASON_P = (0.52, 0.22, 0.12, 0.14)
# sun elevation range per season (degrees): Nebraska around local noon
_SUN_ELEVATION = {"summer": (52, 70), "late_summer": (44, 60), "autumn": (28, 44), "spring": (40, 58)}


@dataclass
class SceneParams:
    """The per-scene draw; see :func:`draw_params`."""

    seed: int
    size: int
    origin_x: float
    origin_y: float
    season: str
    sun_azimuth_deg: float
    sun_elevation_deg: float
    # land survey grid
    grid_rotation_deg: float
    grid_offset_m: tuple[float, float]
    road_line_prob: float
    segment_drop_prob: float
    paved_line_prob: float
    dirt_segment_prob: float
    extra_roads: int
    # land use
    pivot_fraction: float
    tree_abundance: float
    riparian_abundance: float
    farmstead_density_km2: float
    pond_density_km2: float
    waterway_density_km2: float
    shelterbelt_density_km2: float
    entrance_density_km2: float
    strip_fraction: float
    terrace_fraction: float
    # terrain
    elevation_m: float
    slope_m_per_km: float
    slope_direction_deg: float
    undulation_m: float
    undulation_scale_m: float
    # atmosphere and sensor
    brightness: float
    band_gain: tuple[float, float, float, float]
    haze: float
    contrast: float
    blur_sigma_px: float
    noise_dn: float
    vignette: float
    keys: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        for k, v in list(d.items()):
            if isinstance(v, tuple):
                d[k] = [round(float(x), 4) for x in v]
            elif isinstance(v, float):
                d[k] = round(v, 4)
        return d


def draw_params(rng: np.random.Generator, seed: int, size: int) -> SceneParams:
    """Draw the scene's parameters (the first draws of the scene's generator)."""
    ox = float(rng.integers(400_000, 700_000 - size))
    oy = float(rng.integers(4_450_000 + size, 4_700_000))
    season = str(rng.choice(SEASONS, p=_SEASON_P))
    lo, hi = _SUN_ELEVATION[season]
    sun_el = float(rng.uniform(lo, hi))
    sun_az = float(np.clip(rng.normal(175.0, 30.0), 110.0, 250.0))
    rot = 0.0 if rng.random() < 0.5 else float(rng.choice([-1, 1]) * rng.uniform(0.7, 9.0))
    off = (float(rng.uniform(0, SECTION_M)), float(rng.uniform(0, SECTION_M)))
    haze = float(rng.beta(1.3, 4.0))
    gains = np.clip(rng.normal(1.0, 0.03, 4), 0.92, 1.08)
    keys = {k: int(v) for k, v in zip(
        ("terrain", "soil", "veg", "rows", "tex", "water", "tree", "road", "sensor", "moist", "bright", "shade"),
        rng.integers(1, 2**31 - 1, 12))}
    return SceneParams(
        seed=int(seed), size=int(size), origin_x=ox, origin_y=oy, season=season,
        sun_azimuth_deg=sun_az, sun_elevation_deg=sun_el,
        grid_rotation_deg=rot, grid_offset_m=off,
        road_line_prob=float(rng.uniform(0.82, 1.0)),
        segment_drop_prob=float(rng.uniform(0.0, 0.1)),
        paved_line_prob=float(rng.uniform(0.05, 0.3)),
        dirt_segment_prob=float(rng.uniform(0.0, 0.12)),
        extra_roads=int(rng.poisson(0.9 * size / 4096.0)),
        pivot_fraction=float(rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.15, 0.7)], p=[0.4, 0.6])),
        tree_abundance=float(rng.uniform(0.2, 1.0)),
        riparian_abundance=float(rng.uniform(0.3, 1.0)),
        farmstead_density_km2=float(rng.uniform(0.15, 0.6)),
        pond_density_km2=float(rng.uniform(0.05, 0.5)),
        waterway_density_km2=float(rng.uniform(0.1, 0.6)),
        shelterbelt_density_km2=float(rng.uniform(0.1, 0.8)),
        # field entrances (with their ditch fills): about one per field along a road
        entrance_density_km2=float(rng.uniform(1.0, 3.0)),
        # grass borders / farm lanes on a quarter line (a quarter of that on sixteenth lines)
        strip_fraction=float(rng.uniform(0.1, 0.45)),
        # terraced crop fields: none in half of the scenes
        terrace_fraction=float(0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.35)),
        elevation_m=float(rng.uniform(380.0, 900.0)),
        slope_m_per_km=float(rng.uniform(1.0, 5.0)),
        slope_direction_deg=float(rng.uniform(0, 360)),
        undulation_m=float(rng.uniform(2.0, 14.0)),
        undulation_scale_m=float(rng.uniform(500.0, 2500.0)),
        brightness=float(np.clip(rng.normal(1.0, 0.07), 0.82, 1.18)),
        band_gain=tuple(float(g) for g in gains),
        haze=haze,
        contrast=float(rng.uniform(0.88, 1.08)),
        blur_sigma_px=float(rng.uniform(0.35, 0.85)),
        noise_dn=float(rng.uniform(0.8, 3.0)),
        vignette=float(rng.uniform(0.0, 0.06)),
        keys=keys,
    )
