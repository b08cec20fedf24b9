"""Atmosphere and sensor: what turns scene radiance into NAIP-like 8-bit digital numbers.

Per scene: overall brightness and per-band gain (radiometric balancing differs between NAIP tiles), a
contrast stretch, haze (additive path radiance, strongest in blue, weakest in NIR, which also flattens
contrast), a gentle large-scale brightness drift, the optical blur (Gaussian PSF) and sensor noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import noise
from .params import SceneParams

PATH_RADIANCE = np.array([26.0, 30.0, 42.0, 12.0], np.float32)  # DN at haze = 1
MID = np.array([125.0, 120.0, 105.0, 150.0], np.float32)


def apply(img: np.ndarray, p: SceneParams, row0: int, col0: int) -> np.ndarray:
    """Float (4, H, W) radiance -> float DN, in place where possible (blur and noise included)."""
    _, H, W = img.shape
    gain = np.asarray(p.band_gain, np.float32) * np.float32(p.brightness)
    c = np.float32(p.contrast)
    haze = np.float32(p.haze)
    drift = 1.0 + p.vignette * noise.lattice(p.keys["sensor"] + 3, row0, col0, H, W, 1400.0)
    for b in range(4):
        x = img[b]
        x *= gain[b]
        x -= MID[b]
        x *= c * (1.0 - 0.22 * haze)
        x += MID[b]
        x += haze * PATH_RADIANCE[b]
        x *= drift
        img[b] = ndi.gaussian_filter(x, p.blur_sigma_px, truncate=3.0)
        img[b] += np.float32(p.noise_dn) * noise.white(p.keys["sensor"] + 17 * (b + 1), row0, col0, H, W)
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
