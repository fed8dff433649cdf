"""What every torch-side benchmark task shares: threads, the device, synchronisation, saved inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def configure_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def pick_device(request: Mapping[str, Any]) -> torch.device:
    """CUDA when asked for (``auto``) and present, else CPU."""
    if request.get("device", "auto") == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def sync_for(device: torch.device) -> Callable[[], None] | None:
    """What to call before reading the clock so asynchronous device work is counted (None on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors, possibly nested in dicts, lists, tuples) moved to ``device``."""
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch
