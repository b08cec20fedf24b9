"""geodrain: find drainage crossings (culverts and bridges) in NAIP orthophotos with SPP-Net.

The library follows the data flow of detection, one module per stage:

    read (geodrain.read) -> window (geodrain.window) -> infer (geodrain.infer) -> merge (geodrain.merge)
    -> write (geodrain.write)

orchestrated by :func:`geodrain.detect.detect`. Research commands share the model (:mod:`geodrain.model`)
and engine (:mod:`geodrain.infer`) modules: :mod:`geodrain.training`, :mod:`geodrain.nas`,
:mod:`geodrain.schedule`, :mod:`geodrain.profiling`. The ``geodrain`` command line (:mod:`geodrain.cli`)
is a thin layer over these.
"""

__version__ = "0.1.0"
