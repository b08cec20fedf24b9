"""geodrain: find drainage crossings (culverts and bridges) in NAIP orthophotos with SPP-Net.

The library follows the data flow of detection, one module per stage with a typed boundary:

    read (geodrain.read: RasterSource; geodrain.blocks: BlockReader)
    -> window (geodrain.window: WindowGrid, Block)
    -> infer (geodrain.infer: engines -> WindowScores)
    -> merge (geodrain.merge: decode -> Candidates; geodrain.postprocess: crossings_at -> Crossings)
    -> write (geodrain.write: write_crossings)

orchestrated by :func:`geodrain.detect.detect`, with its settings resolved once (:mod:`geodrain.settings`)
and outputs checked and published atomically (:mod:`geodrain.output`). Research commands share the model
(:mod:`geodrain.model`), the reader and the post-processing: :mod:`geodrain.datasets` and
:mod:`geodrain.training` read training crops through :class:`~geodrain.read.RasterSource` and calibrate
through :mod:`geodrain.postprocess`; :mod:`geodrain.nas`, :mod:`geodrain.schedule`, :mod:`geodrain.profiling`
measure the model. The ``geodrain`` command line (:mod:`geodrain.cli`) is a thin layer over these.
"""

__version__ = "0.1.0"
