"""Wall time of each Lightning training step on one fixed batch (torch only).

``Trainer.fit`` runs the module's real step (forward, loss, backward, clipping, optimizer) with no logger,
checkpointing, validation or progress bar; a callback times each step with the device synchronised at
both ends, so the times are the step's and not the launch of its kernels.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import lightning as L
import torch

COMPUTE_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16}


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype the matmuls run in under a Lightning ``precision`` setting (fp32 unless half)."""
    return COMPUTE_DTYPES.get(precision, torch.float32)


class StepTimer(L.Callback):
    """Seconds of each training step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    @staticmethod
    def _sync(module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self._sync(module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self._sync(module)
        self.seconds.append(time.perf_counter() - self._start)


def step_seconds(
    module: L.LightningModule,
    batch: Any,
    steps: int,
    device: torch.device,
    precision: str = "32-true",
    gradient_clip: float | None = None,
) -> list[float]:
    """The seconds of each of ``steps`` training steps of ``module`` on ``batch`` (warm-up steps included:
    the caller drops them)."""
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            max_steps=steps,
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=precision,
            gradient_clip_val=gradient_clip,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[timer],
            default_root_dir=tmp,
        )
        loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    return timer.seconds
