"""Classify profiler event names: GPU kernels, CPU operators, CUDA runtime/driver API calls.

Kernels are classified by name, convolution before matrix multiplication because cuDNN's convolution
kernels are often implicit GEMMs (``sm90_xmma_fprop_implicit_gemm...``). Inside a CUDA-graph replay the
profiler loses the operator -> kernel link, but kernel names remain.
"""

from __future__ import annotations

import re

KERNEL_CLASSES = ("conv", "matmul", "pool", "other")
API_CLASSES = ("launch", "sync", "library", "graph", "memcpy", "alloc", "other")

_KERNEL_RULES = (
    ("conv", re.compile(r"fprop|dgrad|implicit_convolve|implicit_gemm|winograd|scudnn|conv(?!ert)", re.I)),
    ("matmul", re.compile(r"gemm|gemv|nvjet|cublas|splitkreduce|cutlass.*tensorop", re.I)),
    ("pool", re.compile(r"pool", re.I)),
)
_CPU_OP_RULES = (
    ("conv", re.compile(r"conv", re.I)),
    ("matmul", re.compile(r"addmm|(^|::)mm$|matmul|linear|bmm|gemm|mkldnn_linear", re.I)),
    ("pool", re.compile(r"pool", re.I)),
)
_API_RULES = (
    ("launch", re.compile(r"^cu(da)?LaunchKernel|^cuLaunchKernelEx|^cudaLaunchCooperative|^cuLaunchCooperative")),
    ("sync", re.compile(r"Synchronize")),
    ("library", re.compile(r"^cu(da)?(Library|Module)(Load|Unload|GetKernel|GetFunction)|^cuKernelGet"
                           r"|^cudaGetFuncBySymbol|^cuModuleGetLoadingMode")),
    ("graph", re.compile(r"Graph|StreamBeginCapture|StreamEndCapture")),
    ("memcpy", re.compile(r"Memcpy|Memset")),
    ("alloc", re.compile(r"Malloc|Free|HostAlloc|HostRegister")),
)
_COPY_KERNEL = re.compile(r"^(Memcpy|Memset)\b", re.I)
_API_NAME = re.compile(r"^cu(da)?[A-Z]")


def classify_kernel(name: str) -> str:
    """'conv', 'matmul', 'pool' or 'other' for a GPU kernel name; 'copy' for memcpy/memset activity."""
    if _COPY_KERNEL.match(name):
        return "copy"
    for cls, rule in _KERNEL_RULES:
        if rule.search(name):
            return cls
    return "other"


def classify_cpu_op(name: str) -> str:
    """'conv', 'matmul', 'pool' or 'other' for a CPU operator name (``aten::mkldnn_convolution``...)."""
    for cls, rule in _CPU_OP_RULES:
        if rule.search(name):
            return cls
    return "other"


def is_cuda_api(name: str) -> bool:
    """True for CUDA runtime (``cuda*``) and driver (``cu*``) API calls."""
    return bool(_API_NAME.match(name))


def classify_api(name: str) -> str:
    """'launch', 'sync', 'library', 'graph', 'memcpy', 'alloc' or 'other' for a CUDA API call."""
    for cls, rule in _API_RULES:
        if rule.search(name):
            return cls
    return "other"


def shares(times: dict[str, float], classes: tuple[str, ...]) -> dict[str, float]:
    """Percent of the total per class (0 when the total is 0)."""
    total = sum(times.get(c, 0.0) for c in classes)
    return {c: (100.0 * times.get(c, 0.0) / total if total > 0 else 0.0) for c in classes}
