"""Farmland parcels: sections of the survey grid split into quarters, halves, 40-acre fields and strips, and
centre pivots (circles or sectors inscribed in quarter sections, corners in another cover).

Fields are polygons in scene coordinates drawn in order (later ones on top); each carries its look from
:func:`geodrain.synth.spectra.field_look`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Point, Polygon, box

from . import spectra
from .params import SECTION_M, SceneParams
from .roads import EXTEND_M, Grid


@dataclass
class Field:
    id: int
    poly: Polygon
    look: dict
    centre: tuple[float, float] | None = None   # pivot centre (scene coordinates)
    radius: float = 0.0
    extra: dict = field(default_factory=dict)


def _frame_rect(grid: Grid, u0, v0, u1, v1, inset: float) -> Polygon:
    uv = np.array([[u0 + inset, v0 + inset], [u1 - inset, v0 + inset], [u1 - inset, v1 - inset],
                   [u0 + inset, v1 - inset]])
    return Polygon(grid.to_scene(uv))


def make_fields(rng: np.random.Generator, p: SceneParams, grid: Grid) -> list[Field]:
    season = p.season
    ext = box(-EXTEND_M, -EXTEND_M, p.size + EXTEND_M, p.size + EXTEND_M)
    fields: list[Field] = []
    half = SECTION_M / 2
    grid_angle = grid.angle

    def add(poly, cover, *, pivot=False, angle=grid_angle, centre=None, radius=0.0, extra=None):
        if poly.is_empty or not poly.intersects(ext):
            return
        look = spectra.field_look(rng, cover, season, pivot=pivot, angle=angle)
        fields.append(Field(len(fields) + 1, poly, look, centre, radius, extra or {}))

    us = np.concatenate([[grid.us[0] - SECTION_M], grid.us])
    vs = np.concatenate([[grid.vs[0] - SECTION_M], grid.vs])
    for u0 in us:
        for v0 in vs:
            sec = _frame_rect(grid, u0, v0, u0 + SECTION_M, v0 + SECTION_M, 0.0)
            if not sec.intersects(ext):
                continue
            for qu in (0, 1):
                for qv in (0, 1):
                    a0, b0 = u0 + qu * half, v0 + qv * half
                    a1, b1 = a0 + half, b0 + half
                    inset = rng.uniform(0.0, 2.5)
                    if rng.random() < p.pivot_fraction:
                        _pivot(rng, grid, a0, b0, a1, b1, add)
                        continue
                    split = rng.choice(["whole", "halves", "forties", "strips", "irregular"],
                                       p=[0.3, 0.33, 0.17, 0.08, 0.12])
                    if split == "whole":
                        add(_frame_rect(grid, a0, b0, a1, b1, inset), spectra.draw_cover(rng))
                    elif split == "halves":
                        if rng.random() < 0.5:
                            for k in (0, 1):
                                add(_frame_rect(grid, a0, b0 + k * half / 2, a1, b0 + (k + 1) * half / 2, inset),
                                    spectra.draw_cover(rng))
                        else:
                            for k in (0, 1):
                                add(_frame_rect(grid, a0 + k * half / 2, b0, a0 + (k + 1) * half / 2, b1, inset),
                                    spectra.draw_cover(rng))
                    elif split == "forties":
                        for i in (0, 1):
                            for j in (0, 1):
                                add(_frame_rect(grid, a0 + i * half / 2, b0 + j * half / 2,
                                                a0 + (i + 1) * half / 2, b0 + (j + 1) * half / 2, inset),
                                    spectra.draw_cover(rng))
                    elif split == "strips":
                        n = int(rng.integers(3, 8))
                        along_u = rng.random() < 0.5
                        covers = [spectra.draw_cover(rng), "fallow" if rng.random() < 0.6 else spectra.draw_cover(rng)]
                        for k in range(n):
                            if along_u:
                                r = _frame_rect(grid, a0, b0 + k * half / n, a1, b0 + (k + 1) * half / n, inset)
                            else:
                                r = _frame_rect(grid, a0 + k * half / n, b0, a0 + (k + 1) * half / n, b1, inset)
                            add(r, covers[k % 2], angle=grid_angle + (0 if along_u else np.pi / 2))
                    else:
                        # an irregular split line across the quarter
                        t0, t1 = rng.uniform(0.2, 0.8, 2)
                        if rng.random() < 0.5:
                            pa = [[a0, b0], [a1, b0], [a1, b0 + t1 * half], [a0, b0 + t0 * half]]
                            pb = [[a0, b0 + t0 * half], [a1, b0 + t1 * half], [a1, b1], [a0, b1]]
                        else:
                            pa = [[a0, b0], [a0 + t0 * half, b0], [a0 + t1 * half, b1], [a0, b1]]
                            pb = [[a0 + t0 * half, b0], [a1, b0], [a1, b1], [a0 + t1 * half, b1]]
                        for q in (pa, pb):
                            poly = Polygon(grid.to_scene(np.array(q, float))).buffer(-inset)
                            add(poly, spectra.draw_cover(rng))
    return fields


def _pivot(rng, grid: Grid, a0, b0, a1, b1, add) -> None:
    """A centre pivot in a quarter section: the corners first, then the circle (or a sector) on top."""
    corner = str(rng.choice(["pasture", "grass", "fallow", "same", "corn", "soy"],
                            p=[0.3, 0.2, 0.12, 0.18, 0.1, 0.1]))
    cover = spectra.draw_cover(rng, pivot=True)
    add(_frame_rect(grid, a0, b0, a1, b1, rng.uniform(0.0, 2.0)), cover if corner == "same" else corner)
    cu, cv = (a0 + a1) / 2, (b0 + b1) / 2
    c = grid.to_scene(np.array([[cu, cv]]))[0]
    r = (a1 - a0) / 2 - rng.uniform(8.0, 30.0)
    circle = Point(c).buffer(r, 128)
    if rng.random() < 0.22:
        # a sector (3/4 or half pivot) where the arm cannot pass
        start = rng.uniform(0, 2 * np.pi)
        sweep = rng.choice([1.5 * np.pi, np.pi, 1.25 * np.pi])
        t = np.linspace(start, start + sweep, 96)
        wedge = Polygon(np.vstack([c, np.column_stack([c[0] + 1.5 * r * np.cos(t), c[1] + 1.5 * r * np.sin(t)])]))
        circle = circle.intersection(wedge)
    add(circle, cover, pivot=True, centre=(float(c[0]), float(c[1])), radius=float(r),
        extra=dict(arm_angle=float(rng.uniform(0, 2 * np.pi)), towers=int(rng.integers(5, 9)),
                   track=float(rng.uniform(0.2, 1.0))))
