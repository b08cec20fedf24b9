"""Profiling of inference with torch.profiler (the paper's §7: Fig. 6-8, Table 3), per batch size.

::

    from geodrain.profiling import profile_bundle
    report = profile_bundle("models/spp2", [1, 2, 4, 8, 16, 32, 64], out_dir="runs/profile")
    print(report.best_batch_size)

Modules: :mod:`.classify` (kernel, operator and CUDA API names), :mod:`.collect` (one batch size),
:mod:`.select` (batch-size choice under a memory cap), :mod:`.report`, :mod:`.plots`, :mod:`.profiler`
(:func:`profile_bundle`).
"""

from .classify import API_CLASSES, KERNEL_CLASSES, classify_api, classify_cpu_op, classify_kernel
from .collect import BatchProfile, profile_batch
from .profiler import DEFAULT_BATCH_SIZES, engine_config, profile_bundle, profile_model
from .report import ProfileReport
from .select import default_memory_cap_gb, pick_batch_size

__all__ = ["API_CLASSES", "KERNEL_CLASSES", "classify_api", "classify_cpu_op", "classify_kernel", "BatchProfile",
           "profile_batch", "DEFAULT_BATCH_SIZES", "engine_config", "profile_bundle", "profile_model",
           "ProfileReport", "default_memory_cap_gb", "pick_batch_size"]
