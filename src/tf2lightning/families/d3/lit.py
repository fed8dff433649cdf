"""The D3 LightningModule: the score-entropy loss, AdamW with warm-up, gradient clipping, EMA weights.

``net`` is trained (with upstream's noise parameter ``noise_empty`` last in the optimizer); ``ema`` (the
module the train stage saves as ``model.pt``) is its exponential moving average and is what validation
and sampling use. Each step runs ``training.batch_loss`` with the step's random stream, so it is the plain
loop's step (see ``tests/test_d3_family.py``).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import lightning as L
import torch
from torch import nn

from tf2lightning.families.d3.training import (
    Settings,
    batch_loss,
    ema_update,
    noise_parameter,
    set_lr,
    trainable,
)
from tf2lightning.run import Run, run_to_dict

VALIDATION_SEED_OFFSET = 10_007


class D3Module(L.LightningModule):
    """A batch is ``{"seq": uint8 (B, L), "activity": float32 (B, n_act)}``."""

    def __init__(self, model: nn.Module, settings: Settings, config: dict[str, Any]) -> None:
        super().__init__()
        self.settings = settings
        self.config = config
        self.net = copy.deepcopy(model)
        self.ema = model.requires_grad_(False)
        self.noise_empty = noise_parameter()
        self._steps_before = 0

    def forward(self, indices: torch.Tensor, labels: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.ema(indices, labels, sigma)

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        set_lr(self.optimizers().optimizer, self.settings, self.global_step)
        self._steps_before = self.global_step

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Micro-batch ``batch_idx % accum`` of the step (the Trainer's ``accumulate_grad_batches`` divides
        the loss by ``accum``, as the plain loop does)."""
        micro = batch_idx % self.settings.accum
        loss = batch_loss(self.net, self.settings, batch["seq"], batch["activity"], self.global_step, micro)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        if self.global_step == self._steps_before:  # accumulating: no optimizer step yet
            return
        followed = [
            e for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True) if p.requires_grad
        ]
        ema_update(followed, trainable(self.net), self.global_step, self.settings.ema_decay)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """The EMA model's loss with a fixed random stream per batch, so epochs are comparable."""
        settings = dataclasses.replace(self.settings, seed=self.settings.seed + VALIDATION_SEED_OFFSET)
        loss = batch_loss(self.ema, settings, batch["seq"], batch["activity"], batch_idx)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(batch["seq"]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What ``checkpoint.to_original`` needs to rebuild the original-format dict."""
        checkpoint["d3_original"] = {"ema_decay": self.settings.ema_decay, "config": self.config}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Upstream's optimizer order: the model's parameters, then the noise module's ``empty``."""
        return self.settings.optimizer([*self.net.parameters(), self.noise_empty])


def make_module(run: Run, model: nn.Module, **extras: object) -> D3Module:
    del extras
    return D3Module(model, Settings.from_run(run), run_to_dict(run))
