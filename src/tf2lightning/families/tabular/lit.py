"""The tabular LightningModule: the recipe's loss, optimizer and schedule under Lightning's loop.

Everything that shapes training lives in :class:`recipe.Recipe` (the plain loop has its own
:mod:`plain_step`); this module only logs per-epoch means (example-weighted, as the plain loop keeps them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from tf2lightning.families.tabular.recipe import EpochTotals, Recipe, make_recipe
from tf2lightning.run import Run


class TabularModule(L.LightningModule):
    """Wraps a classifier returning logits; a batch is ``{"x", "label"[, "teacher"]}``."""

    def __init__(self, model: nn.Module, recipe: Recipe) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.train_totals = EpochTotals()
        self.val_totals = EpochTotals()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, parts = self.recipe.loss(self.model, batch)
        values = {"train_loss": loss, **{f"train_{k}": v for k, v in parts.items()}}
        self.train_totals.add(values, len(batch["label"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_totals = EpochTotals()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_totals.add_predictions(self.model(batch["x"]), batch["label"])

    def on_validation_epoch_end(self) -> None:
        """Validation runs before ``on_train_epoch_end``: the epoch's training means are logged here too."""
        metrics = self.val_totals.means()
        if not self.trainer.sanity_checking:
            metrics.update(self.train_totals.means())
            self.train_totals = EpochTotals()
        self.log_dict(metrics, prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.recipe.optimizer(self.model.parameters())
        scheduler = self.recipe.scheduler(optimizer, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["recipe_rng"] = self.recipe.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.recipe.load_state_dict(checkpoint["recipe_rng"])


def make_module(run: Run, model: nn.Module, teacher: Path | None = None) -> TabularModule:
    """The LightningModule of one run; the teacher's probabilities arrive in the batches (see ``data``)."""
    del teacher
    return TabularModule(model, make_recipe(run, model.n_classes))
