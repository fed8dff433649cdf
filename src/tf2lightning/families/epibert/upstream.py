"""The port against upstream's own outputs (torch): upstream's call order and layout in, its outputs out.

Upstream's model is called with ``(sequence (N, L, 4), atac (N, L/4, 1), motif_activity (N, 1, M))`` and
returns the ATAC profile ``(N, bins, 1)`` (pretraining) or ``(out_atac, out_rna)`` (fine-tuning).
:func:`check_outputs` compares the port with upstream's float32 outputs (``probe.npz``'s ``output_*``) at
1e-5 of the output scale. A port with the wrong Performer ``seed`` (not in the checkpoint) or head count
(mapped into the port's (d, d) projections, it loads) gives other outputs, so a mismatch names both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from tf2lightning.errors import ParityError
from tf2lightning.families.epibert.model import parity_inputs
from tf2lightning.run import Run

TOLERANCE = 1e-5  # of the output scale (max |output|)


def port_inputs(sequence: np.ndarray, atac: np.ndarray, motif: np.ndarray) -> tuple[Tensor, ...]:
    """Upstream's inputs, in its call order and layout, as the port's tensors (the same layout)."""
    return parity_inputs({"sequence": sequence, "atac": atac, "motif_activity": motif})


def upstream_outputs(output: Tensor) -> list[np.ndarray]:
    """The port's output -> upstream's outputs in upstream's order, each ``(N, bins, 1)``."""
    out = output.detach().numpy()
    if out.ndim == 2:
        return [out[..., None]]
    return [out[..., i : i + 1] for i in range(out.shape[-1])]


def probe_arrays(probe: str | Path) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    """``probe.npz``'s inputs (``input_<i>_*`` in call order) and float32 outputs (``output_<i>_*``)."""
    with np.load(probe) as arrays:
        inputs = tuple(arrays[k] for k in sorted(k for k in arrays if k.startswith("input_")))
        outputs = {k: arrays[k] for k in sorted(k for k in arrays if k.startswith("output_"))}
    return inputs, outputs


def check_outputs(run: Run, port: nn.Module, probe: str | Path) -> dict[str, float]:
    """Run ``port`` on the probe's inputs; return each output's max error / output scale; raise
    :class:`ParityError` over :data:`TOLERANCE`, naming the Performer settings no checkpoint holds."""
    inputs, expected = probe_arrays(probe)
    with torch.no_grad():
        got = upstream_outputs(port.eval()(*port_inputs(*inputs)))
    if len(got) != len(expected):
        raise ParityError(f"{probe}: upstream gives {len(expected)} outputs, the {run.name} port {len(got)}")
    errors = {
        name: float(np.abs(g - want).max() / np.abs(want).max())
        for (name, want), g in zip(expected.items(), got, strict=True)
    }
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    if bad:
        arch = run.arch
        listed = ", ".join(f"{k} {v:.3g}" for k, v in bad.items())
        raise ParityError(
            f"{run.name}: the port differs from upstream's outputs in {probe} by {listed} of the output "
            f"scale (> {TOLERANCE:g}). Check num_heads ({arch['num_heads']}; the checkpoint's attention "
            f"kernels are (d, heads, head_dim)) and the Performer seed ({arch['seed']}; not in the "
            "checkpoint: the training script's val_data_seed)"
        )
    return errors
