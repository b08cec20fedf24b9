"""Synthetic NAIP-like watersheds with drainage-crossing truth (``geodrain synth``).

:func:`generate_scene` writes a 4-band 1 m orthophoto, a DEM with road embankments (digital dams), the
crossings and hard negatives, the roads and the streams of a random farmland watershed in Nebraska's UTM
zone, deterministic per seed. Modules, in the order they run: :mod:`.params` (scene-wide draws),
:mod:`.roads`, :mod:`.terrain`, :mod:`.streams`, :mod:`.crossings`, :mod:`.parcels`, :mod:`.features`,
:mod:`.negatives` (assembled by :mod:`.layout`), then :mod:`.render` with :mod:`.spectra`,
:mod:`.canopy`, :mod:`.noise` and :mod:`.sensor`, and :mod:`.io` for the files.
"""

from .scene import SceneResult, generate_scene

__all__ = ["SceneResult", "generate_scene"]
