"""The SPP-Net family, its notation and model bundles."""

from .arch import PRESETS, Arch, resolve_arch, search_space
from .bundle import Bundle, load_bundle, save_bundle
from .sppnet import SPPNet, build_model

__all__ = ["Arch", "PRESETS", "resolve_arch", "search_space", "SPPNet", "build_model", "Bundle",
           "load_bundle", "save_bundle"]
