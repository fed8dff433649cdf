"""Model FLOPs and model FLOPs utilisation (MFU): achieved FLOP/s over the device's dense peak.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real call (matmuls, convolutions,
attention; forward and, when the call runs it, backward), so they are the model's FLOPs, not the hardware's
(no recomputation, no elementwise work), as MFU is defined (Chowdhery et al. 2022, PaLM, appendix B).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # dense (no sparsity) peak tensor-core TFLOP/s from the vendors' data sheets; SXM parts unless named
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100 NVL": {"bf16": 835.0, "fp16": 835.0, "tf32": 417.5, "fp32": 60.0},
    "H100": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.1, "fp16": 362.1, "tf32": 183.0, "fp32": 91.6},
    "A10": {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2},
    "V100": {"fp16": 125.0, "fp32": 15.7},
}
"""Keyed by a substring of ``torch.cuda.get_device_name``; the first match wins (specific names first)."""

_DTYPE_KEYS = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def count_flops(fn: Callable[[], Any]) -> int:
    """The FLOPs of one call of ``fn`` (run once, for real)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """The dense peak FLOP/s of ``device`` for ``dtype`` math, or None (CPU, unknown GPU or dtype).

    fp32 on a GPU counts as TF32 when PyTorch lets matmuls use it (``allow_tf32``)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    key = _DTYPE_KEYS.get(dtype)
    if key == "fp32" and torch.backends.cuda.matmul.allow_tf32:
        key = "tf32"
    for part, peaks in PEAK_TFLOPS.items():
        if part in name and key in peaks:
            return peaks[key] * 1e12
    return None


def utilisation(flops: float, seconds: float, peak: float | None) -> float | None:
    """``flops / seconds / peak``: the fraction of the peak reached; None without a peak or a time."""
    if peak is None or peak <= 0 or seconds <= 0:
        return None
    return flops / seconds / peak
