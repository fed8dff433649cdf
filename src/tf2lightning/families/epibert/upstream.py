"""The port against upstream's own outputs (torch): upstream's call order and layout in, its outputs out.

Upstream's model is called with ``(sequence (N, L, 4), atac (N, L/4, 1), motif_activity (N, 1, M))`` and
returns the ATAC profile ``out`` ``(N, bins, 1)`` (pretraining) or ``(out_atac, out_rna)`` (fine-tuning);
the port (eager, traced or exported) takes and returns the same. :func:`check_outputs` compares it with
upstream's float32 outputs (``probe.npz``'s ``output_*``, see ``recorded``) at 1e-5 of the output scale. A
port with the wrong Performer ``seed`` (not in the checkpoint) or head count (mapped into the port's (d, d)
projections, it loads) gives other outputs, so a mismatch names both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tf2lightning.errors import ParityError
from tf2lightning.families.epibert import recorded
from tf2lightning.families.epibert.model import parity_inputs
from tf2lightning.run import Run

TOLERANCE = 1e-5  # of the output scale (max |output|)


def as_arrays(outputs: Tensor | tuple[Tensor, ...] | list[np.ndarray]) -> list[np.ndarray]:
    """The port's (or an export's) outputs as a list of arrays, in order."""
    items = outputs if isinstance(outputs, tuple | list) else (outputs,)
    return [t.detach().numpy() if isinstance(t, Tensor) else np.asarray(t) for t in items]


def check_outputs(run: Run, port: Callable, probe: str | Path) -> dict[str, float]:
    """Run ``port`` (a module, traced module or any callable on the port's inputs) on the probe's inputs;
    return each upstream output's max error / output scale, by name; raise :class:`ParityError` over
    :data:`TOLERANCE` or on another number or shape of outputs, naming the settings no checkpoint holds."""
    inputs, expected = recorded.probe_arrays(probe)
    if isinstance(port, torch.nn.Module):
        port.eval()
    with torch.no_grad():
        got = as_arrays(port(*parity_inputs(inputs)))  # upstream's layout, the port's too
    shapes = [g.shape for g in got]
    if shapes != [w.shape for w in expected.values()]:
        want = {name: w.shape for name, w in expected.items()}
        raise ParityError(f"{probe}: upstream gives {want}, the {run.name} port {shapes}")
    errors = {
        name: float(np.abs(g - want).max() / np.abs(want).max())
        for (name, want), g in zip(expected.items(), got, strict=True)
    }
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    if bad:
        listed = ", ".join(f"{k} {v:.3g}" for k, v in bad.items())
        raise ParityError(
            f"{run.name}: the port differs from upstream's outputs in {probe} by {listed} of the output "
            f"scale (> {TOLERANCE:g}). Check {recorded.unstored_settings(run.arch)}"
        )
    return errors
