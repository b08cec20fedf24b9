"""Small geometry helpers shared by the layout modules (scene coordinates: x = column, y = row, metres)."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.ndimage import gaussian_filter1d
from shapely.geometry import LineString, Point, Polygon


def unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def wrap(a):
    """Wrap angles to (-pi, pi]."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def rotate(xy: np.ndarray, angle: float, centre) -> np.ndarray:
    """Rotate points (n, 2) by ``angle`` radians about ``centre``."""
    c, s = np.cos(angle), np.sin(angle)
    d = np.asarray(xy, float) - centre
    return np.column_stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]]) + centre


def chaikin(xy: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Corner-cutting smoothing of an open polyline; endpoints stay."""
    p = np.asarray(xy, float)
    for _ in range(iterations):
        if len(p) < 3:
            return p
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.empty((2 * (len(p) - 1), 2))
        mid[0::2], mid[1::2] = q, r
        p = np.vstack([p[:1], mid[1:-1], p[-1:]])
    return p


def smooth(xy: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of polyline vertices (endpoints pinned)."""
    p = np.asarray(xy, float)
    if len(p) < 5 or sigma <= 0:
        return p
    out = gaussian_filter1d(p, sigma, axis=0, mode="nearest")
    out[0], out[-1] = p[0], p[-1]
    return out


def tangent(line: LineString, pt, eps: float = 0.75) -> np.ndarray:
    """Unit tangent of ``line`` at its point nearest ``pt`` (direction of increasing distance)."""
    s = line.project(Point(pt))
    a = np.array(line.interpolate(max(0.0, s - eps)).coords[0])
    b = np.array(line.interpolate(min(line.length, s + eps)).coords[0])
    d = b - a
    n = np.hypot(*d)
    return d / n if n > 0 else np.array([1.0, 0.0])


def oriented_rect(centre, u: np.ndarray, half_u: float, half_v: float) -> Polygon:
    """Rectangle centred at ``centre`` with half extent ``half_u`` along unit ``u`` and ``half_v`` across."""
    c = np.asarray(centre, float)
    v = np.array([-u[1], u[0]])
    pts = [c + half_u * u + half_v * v, c - half_u * u + half_v * v,
           c - half_u * u - half_v * v, c + half_u * u - half_v * v]
    return Polygon(pts)


def blob(rng: np.random.Generator, centre, radius: float, roughness: float = 0.25, n: int = 48) -> Polygon:
    """An irregular closed shape (a pond, a yard): a circle with a smooth random radial profile."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(1, 5):
        r += roughness / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.45, 1.8)
    pts = np.column_stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)])
    pts = chaikin(np.vstack([pts, pts[:1]]), 2)
    return shapely.make_valid(Polygon(pts)).buffer(0)


def _segments(line: LineString):
    xy = shapely.get_coordinates(line)
    d = np.diff(xy, axis=0)
    seg = np.hypot(d[:, 0], d[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return xy, d, seg, cum


def along(line: LineString, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and unit left normals of a line at distances ``s`` (vectorised; s clipped to the line)."""
    xy, d, seg, cum = _segments(line)
    s = np.clip(np.asarray(s, float), 0.0, cum[-1])
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    f = np.where(seg[i] > 0, (s - cum[i]) / np.where(seg[i] > 0, seg[i], 1.0), 0.0)
    pts = xy[i] + f[:, None] * d[i]
    u = d[i] / np.where(seg[i] > 0, seg[i], 1.0)[:, None]
    return pts, np.column_stack([-u[:, 1], u[:, 0]])


def normals_along(line: LineString, s: np.ndarray, eps: float = 1.0) -> np.ndarray:
    """Unit left normals of ``line`` at distances ``s`` (averaged over +-eps)."""
    a = along(line, np.asarray(s) - eps)[0]
    b = along(line, np.asarray(s) + eps)[0]
    d = b - a
    n = np.hypot(d[:, 0], d[:, 1])[:, None]
    d = d / np.where(n > 0, n, 1.0)
    return np.column_stack([-d[:, 1], d[:, 0]])


def line_parts(geom) -> list[LineString]:
    """The LineStrings of a (multi)line or collection; empty list for anything else."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "LineString":
        return [geom]
    if hasattr(geom, "geoms"):
        out = []
        for g in geom.geoms:
            out.extend(line_parts(g))
        return out
    return []


def point_parts(geom) -> list[tuple[float, float]]:
    """The point coordinates of a (multi)point or collection."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Point":
        return [(geom.x, geom.y)]
    if hasattr(geom, "geoms"):
        out = []
        for g in geom.geoms:
            out.extend(point_parts(g))
        return out
    return []
