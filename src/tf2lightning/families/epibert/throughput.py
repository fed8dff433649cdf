"""Throughput of the EpiBERT Lightning training step (torch only): examples/s, output tokens/s, model
FLOPs per step and model FLOPs utilisation (MFU), at any size, precision and device.

The step is the real one: ``Trainer.fit`` of the run's LightningModule (forward, loss, backward, gradient
clipping, AdamW) on one fixed batch, timed between ``on_train_batch_start`` and ``on_train_batch_end`` with
the device synchronised, after ``warmup`` untimed steps; rates use the median step time. Model FLOPs
are counted by :func:`tf2lightning.bench.flops.count_flops` on one forward + backward of the same batch
under the same autocast; MFU divides the achieved FLOP/s by the device's dense peak for the precision's
compute dtype (none on CPU). Output tokens are the transformer's tokens (4,096 per example at the
published size).
"""

from __future__ import annotations

import statistics
from typing import Any

import lightning as L
import torch
from torch import Tensor

from tf2lightning.bench.flops import count_flops, peak_flops, utilisation
from tf2lightning.bench.lightning_steps import compute_dtype, step_seconds
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.families.epibert.lit import MaskedATACPretraining, make_module
from tf2lightning.families.epibert.model import build
from tf2lightning.families.epibert.modes import is_finetune
from tf2lightning.run import Run


def synthetic_batch(run: Run, batch_size: int, seed: int = 0) -> dict[str, Tensor]:
    """A batch shaped as the DataModule's (codes, masked ATAC, motif activity, target, mask[, rna]),
    with random values: throughput does not depend on them."""
    geo = geometry(run)
    g = torch.Generator().manual_seed(seed)
    batch = {
        "sequence": torch.randint(0, 4, (batch_size, geo.input_length), generator=g),
        "atac": torch.poisson(torch.full((batch_size, geo.atac_length), 0.3), generator=g),
        "motif": torch.rand(batch_size, geo.n_motifs, generator=g),
        "target": torch.poisson(torch.full((batch_size, geo.output_length), 10.0), generator=g),
        "mask": (torch.rand(batch_size, geo.output_length, generator=g) < 0.15).float(),
    }
    if is_finetune(run.arch):
        batch["rna"] = torch.rand(batch_size, geo.output_length, generator=g) * 3
    return batch


def step_flops(
    module: MaskedATACPretraining, batch: dict[str, Tensor], device: torch.device, precision: str
) -> int:
    """Model FLOPs of one forward + backward of ``batch`` under ``precision``'s autocast."""
    dtype = compute_dtype(precision)
    on_device = {k: v.to(device) for k, v in batch.items()}

    def forward_backward() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = module.batch_loss(on_device)
        loss.backward()

    module.train()
    flops = count_flops(forward_backward)
    module.zero_grad(set_to_none=True)
    return flops


def training_throughput(
    run: Run,
    batch_size: int,
    device: str = "auto",
    precision: str | None = None,
    steps: int = 10,
    warmup: int = 2,
    gradient_clip: float | None = 1.0,
) -> dict[str, Any]:
    """Time ``steps`` Lightning training steps of ``run``'s model; return the rates and MFU.

    ``precision`` None means bf16-mixed on CUDA and 32-true on CPU (as the workflow's default)."""
    accelerator = "gpu" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    torch_device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    precision = precision or ("bf16-mixed" if accelerator == "gpu" else "32-true")
    L.seed_everything(run.seed, verbose=False)
    module = make_module(run, build(run))
    batch = synthetic_batch(run, batch_size, run.seed)
    seconds = step_seconds(module, batch, warmup + steps, torch_device, precision, gradient_clip)
    timed = seconds[warmup:]
    step_s = statistics.median(timed)
    flops = step_flops(module, batch, torch_device, precision)
    peak = peak_flops(torch_device, compute_dtype(precision))
    return {
        "device": torch.cuda.get_device_name(torch_device) if accelerator == "gpu" else "cpu",
        "precision": precision,
        "batch": batch_size,
        "steps": len(timed),
        "step_s_median": step_s,
        "examples_per_s": batch_size / step_s,
        "tokens_per_s": geometry(run).n_tokens * batch_size / step_s,
        "flops_per_step": flops,
        "achieved_tflops": flops / step_s / 1e12,
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": utilisation(flops, step_s, peak),
        "peak_memory_gib": torch.cuda.max_memory_allocated(torch_device) / 2**30
        if accelerator == "gpu"
        else None,
    }
