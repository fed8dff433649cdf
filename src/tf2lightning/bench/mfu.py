"""The model FLOPs of a timed torch variant: FLOPs per item, achieved TFLOP/s and, on a device with a known
peak, model FLOPs utilisation (counting and peaks: :mod:`tf2lightning.bench.flops`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from tf2lightning.bench.flops import count_flops, peak_flops, utilisation
from tf2lightning.bench.timing import Timing


def flops_per_item(fn: Callable[[], Any], items: float) -> float | None:
    """The FLOPs of one call of ``fn`` (which runs once, for real) per item; None where none are counted
    (an operator ``FlopCounterMode`` does not know, e.g. inside ONNX Runtime)."""
    flops = count_flops(fn)
    return flops / items if flops > 0 else None


def with_flops(
    timing: Timing, per_item: float | None, device: torch.device, dtype: torch.dtype = torch.float32
) -> Timing:
    """``timing`` with ``flops_per_item``, ``achieved_tflops`` (at its median) and ``mfu`` (None without a
    known peak for ``device`` and ``dtype``) in its ``extra``; unchanged when ``per_item`` is None."""
    if per_item is None:
        return timing
    mfu = utilisation(per_item * timing.items, timing.median_s, peak_flops(device, dtype))
    extra = {"flops_per_item": per_item, "achieved_tflops": per_item * timing.rate / 1e12, "mfu": mfu}
    return dataclasses.replace(timing, extra={**timing.extra, **extra})
