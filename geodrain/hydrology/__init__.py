"""Hydrology on DEMs: reading DEMs (:mod:`.dem`), flow routing with pyflwdir (:mod:`.routing`), the breach at
one crossing (:mod:`.breach`) and the crossing pass rate (:mod:`.passrate`). :mod:`geodrain.condition` runs
the breaches over a whole DEM."""
