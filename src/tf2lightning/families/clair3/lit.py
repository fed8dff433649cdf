"""The Clair3 LightningModule: four-head (focal) cross-entropy, AdamW (+ Lookahead), warm-up then
exponential decay per step, and torchmetrics macro-F1 per head."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassF1Score

from tf2lightning.families.clair3.labels import HEAD_SIZES, HEADS
from tf2lightning.families.clair3.lookahead import Lookahead
from tf2lightning.run import Run


def focal_loss(logits: Tensor, target: Tensor, gamma: float) -> Tensor:
    """Mean focal loss ``-(1 - p_t)^gamma log p_t`` (Clair3's loss; ``gamma=0`` is cross-entropy)."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None])[:, 0]
    return (-((1 - log_p.exp()) ** gamma) * log_p).mean()


def warmup_decay(warmup_steps: int, decay: float) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over ``warmup_steps``, then ``decay ** (step - warmup)``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return decay ** (step - warmup_steps)

    return factor


class Clair3Module(L.LightningModule):
    """Wraps a port returning four heads' logits; a batch is ``{"x": int8 sites, "y": int64 (B, 4)}``."""

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        weight_decay: float,
        gamma: float = 2.0,
        lookahead: bool = False,
        warmup_steps: int = 20,
        decay: float = 0.999,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        heads = len(model.heads.y)  # 4, or 2 for upstream's pileup models
        self.val_f1 = nn.ModuleDict(
            {
                name: MulticlassF1Score(size, average="macro")
                for name, size in zip(list(HEADS)[:heads], HEAD_SIZES[:heads], strict=True)
            }
        )

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.model(x)

    def _losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        logits = self(batch["x"])
        losses = [focal_loss(out, batch["y"][:, i], self.hparams.gamma) for i, out in enumerate(logits)]
        return torch.stack(losses).sum(), logits

    def batch_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The training loss of ``batch`` (nothing logged)."""
        return self._losses(batch)[0]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._losses(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, logits = self._losses(batch)
        self.log("val_loss", loss, prog_bar=True)
        for i, (name, metric) in enumerate(self.val_f1.items()):
            metric(logits[i], batch["y"][:, i])
            self.log(f"val_{name}_f1", metric)

    def configure_optimizers(self) -> dict:
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.lookahead:
            optimizer = Lookahead(optimizer)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_decay(self.hparams.warmup_steps, self.hparams.decay)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def make_module(run: Run, model: nn.Module) -> Clair3Module:
    """The LightningModule for one configured run."""
    cfg = run.train
    return Clair3Module(
        model,
        lr=float(cfg.get("lr", 1e-3)),
        weight_decay=float(cfg.get("weight_decay", 1e-4)),
        gamma=float(cfg.get("focal_gamma", 2.0)),
        lookahead=bool(cfg.get("lookahead", False)),
        warmup_steps=int(cfg.get("warmup_steps", 20)),
        decay=float(cfg.get("lr_decay", 0.999)),
    )
