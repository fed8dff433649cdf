"""Upstream's recorded outputs beside a checkpoint: ``probe.npz`` (numpy only, no framework).

Where a checkpoint folder (or the folder holding it) carries a ``probe.npz`` as the golden fixtures ship
it, its ``input_<i>_<name>`` are upstream's inputs in upstream's call order and layout and its
``output_<i>_<name>`` upstream's float32 outputs in upstream's order. The parity reference then holds
these outputs, so what no checkpoint stores (the Performer ``seed``) is checked against upstream itself,
not against a rebuild that uses the same value as the port.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.tf_checkpoint import resolve_checkpoint_prefix

PROBE = "probe.npz"
REFERENCE_ATTR = "recorded_outputs"  # the reference file's attribute naming the probe its outputs are from


def find_probe(checkpoint: str | Path) -> Path | None:
    """``probe.npz`` in the checkpoint's folder or the folder above it (the fixtures' ``<kind>/ckpt``
    beside ``<kind>/probe.npz``), or None."""
    folder = resolve_checkpoint_prefix(checkpoint).parent
    return next((p for p in (folder / PROBE, folder.parent / PROBE) if p.is_file()), None)


def probe_arrays(probe: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The probe's inputs and outputs by upstream's names (``sequence``, ``out_atac``, ...), each in
    upstream's order (the ``<i>`` of ``input_<i>_<name>`` / ``output_<i>_<name>``)."""
    with np.load(probe) as arrays:
        return _named(arrays, "input_"), _named(arrays, "output_")


def _named(arrays: Mapping[str, Any], prefix: str) -> dict[str, np.ndarray]:
    keys = sorted((k for k in arrays if k.startswith(prefix)), key=lambda k: int(k.split("_")[1]))
    return {k.split("_", 2)[2]: np.asarray(arrays[k]) for k in keys}


def unstored_settings(arch: Mapping[str, Any]) -> str:
    """The settings a checkpoint does not fix (or fixes only in the shapes), with the values in use."""
    return (
        f"num_heads ({arch['num_heads']}; the checkpoint's attention kernels are (d, heads, head_dim)) and "
        f"the Performer seed ({arch['seed']}; not in the checkpoint: the training script's val_data_seed)"
    )
