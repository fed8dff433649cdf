"""The DGA LightningModule: integer labels, cross-entropy, AdamW, accuracy and macro-F1."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from tf2lightning.run import Run


class DomainClassifier(L.LightningModule):
    """Wraps the port (which returns logits); a batch is ``{"tokens": uint8 (B, L), "label": int64 (B,)}``."""

    def __init__(self, model: nn.Module, n_classes: int, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.val_acc = MulticlassAccuracy(n_classes, average="micro")
        self.val_f1 = MulticlassF1Score(n_classes, average="macro")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens.long())

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of ``batch`` (nothing logged)."""
        return F.cross_entropy(self(batch["tokens"]), batch["label"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.batch_loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["tokens"])
        self.log("val_loss", F.cross_entropy(logits, batch["label"]), prog_bar=True)
        self.val_acc(logits, batch["label"])
        self.val_f1(logits, batch["label"])
        self.log_dict({"val_acc": self.val_acc, "val_macro_f1": self.val_f1}, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )


def make_module(run: Run, model: nn.Module) -> DomainClassifier:
    """The LightningModule for one configured run."""
    return DomainClassifier(
        model,
        n_classes=model.n_classes,
        lr=float(run.train.get("lr", 2e-3)),
        weight_decay=float(run.train.get("weight_decay", 1e-4)),
    )
