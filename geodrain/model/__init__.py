"""The SPP-Net family, its notation and model bundles.

The architecture notation is imported at once; bundles and the torch model on first use, so that reading a
bundle's manifest (e.g. to run its ONNX graph) does not import torch.
"""

from .arch import PRESETS, Arch, resolve_arch, search_space

__all__ = ["Arch", "PRESETS", "resolve_arch", "search_space", "SPPNet", "build_model", "Bundle",
           "load_bundle", "save_bundle"]
_LAZY = {"SPPNet": "sppnet", "build_model": "sppnet", "Bundle": "bundle", "load_bundle": "bundle",
         "save_bundle": "bundle"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
