"""The EpiBERT LightningModules: masked-ATAC pretraining and expression fine-tuning, the source's losses.

One-hot encoding happens here, on the module's device. Logged: ``train_loss``, ``val_loss`` and
``val_pearson`` (pretraining: Pearson r of predicted vs. observed ATAC over the masked bins of the epoch;
fine-tuning: of the expression profile over all bins, with ``val_pearson_atac`` for the masked ATAC).
Epoch-level values are reduced over DDP processes (``sync_dist``), so checkpointing and early stopping
decide the same on every rank. Precision (bf16-mixed on GPU), gradient clipping and the DDP strategy are
the standard Trainer's (``train.precision``, ``train.gradient_clip``, ``train.strategy``).

A fine-tuning run with ``init_from`` starts from that architecture's trained model: every trunk and
ATAC-head tensor is loaded from it (:func:`load_pretrained`), the expression head is re-initialised.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torchmetrics.regression import PearsonCorrCoef

from tf2lightning.errors import ConfigError
from tf2lightning.families.epibert import recipe as recipes
from tf2lightning.families.epibert.augment import one_hot
from tf2lightning.families.epibert.loss import finetune_loss, masked_loss
from tf2lightning.families.epibert.model import EpiBERT, tracks
from tf2lightning.families.epibert.modes import HEAD_PREFIX, is_finetune
from tf2lightning.families.epibert.recipe import Recipe
from tf2lightning.run import Run

log = logging.getLogger(__name__)


class MaskedATACPretraining(L.LightningModule):
    def __init__(
        self,
        model: EpiBERT,
        lr: float,
        weight_decay: float,
        total_weight: float,
        loss_type: str = "poisson_multinomial",
        recipe: Recipe | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.total_weight = lr, weight_decay, total_weight
        self.loss_type, self.recipe = loss_type, recipe or Recipe(weight_decay=weight_decay)
        self.val_pearson = PearsonCorrCoef()

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """The model's outputs stacked (:func:`model.tracks`): ``(N, bins)``, fine-tuning ``(N, bins, 2)``."""
        return tracks(self.model(one_hot(batch["sequence"]), batch["atac"], batch["motif"]))

    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        pred = self(batch).float()
        return masked_loss(batch["target"], pred, batch["mask"], self.total_weight, self.loss_type), pred

    def batch_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The training loss of ``batch`` (nothing logged)."""
        return self._loss(batch)[0]

    def _log(self, name: str, value: Tensor | PearsonCorrCoef, batch: dict[str, Tensor]) -> None:
        self.log(name, value, on_step=False, on_epoch=True, batch_size=len(batch["target"]), sync_dist=True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._loss(batch)
        self._log("train_loss", loss, batch)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, pred = self._loss(batch)
        where = batch["mask"] > 0
        self.val_pearson.update(pred[where], batch["target"][where])
        self._log("val_loss", loss, batch)
        self._log("val_pearson", self.val_pearson, batch)

    def configure_optimizers(self) -> Any:
        return recipes.configure(self.recipe, [{"params": list(self.parameters())}], self.lr)


ATAC_HEAD = ("head", "head_dense")  # the masked-ATAC head's modules (upstream's final_pointwise_conv, ...)


def no_decay(name: str) -> bool:
    """Parameters upstream's AdamW leaves out of weight decay: biases and norm layers' (``bn``, ``ln``)."""
    return name.endswith("bias") or any(part in ("bn", "ln", "final_ln") for part in name.split("."))


class ExpressionFinetuning(MaskedATACPretraining):
    """Fine-tuning as upstream's ``train_model_rampage_finetune.py``: the expression loss per example
    + ``atac_scale`` x the masked-ATAC loss (only the expression loss without ``predict_atac``).

    Upstream trains with two AdamW optimizers, each with its own ``cos_w_warmup`` schedule (base rates
    ``lr_base1``/``lr_base2``, here ``train.lr`` and ``head_lr``) and its own global gradient-norm clip:
    the first over the trunk (and the ATAC head with ``predict_atac``), the second over the expression
    head; biases and norm layers are left out of weight decay. Adam's update is per parameter, so one
    torch optimizer with these parameter groups, each scheduled from its own base rate, steps exactly as
    the two; :meth:`configure_gradient_clipping` clips each optimizer's gradients on their own. Without
    ``predict_atac`` the ATAC head is in neither (it is not trained)."""

    def __init__(
        self,
        model: EpiBERT,
        atac_scale: float,
        head_lr: float | None = None,
        predict_atac: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(model, **common)
        self.atac_scale, self.head_lr = atac_scale, head_lr or self.lr
        self.predict_atac = predict_atac
        self.val_pearson_atac = PearsonCorrCoef()

    def optimizer_sets(self) -> list[list[tuple[str, torch.nn.Parameter]]]:
        """Upstream's two optimizers' variables: ``[trunk (+ ATAC head), expression head]``."""
        named = list(self.model.named_parameters())
        heads = [(n, p) for n, p in named if n.startswith(HEAD_PREFIX)]
        trunk = [(n, p) for n, p in named if not n.startswith(HEAD_PREFIX)]
        if not self.predict_atac:
            trunk = [(n, p) for n, p in trunk if n.split(".")[0] not in ATAC_HEAD]
        return [trunk, heads]

    def configure_optimizers(self) -> Any:
        groups = [
            {"params": [p for n, p in named if no_decay(n) == skip], "lr": lr}
            | ({"weight_decay": 0.0} if skip else {})
            for named, lr in zip(self.optimizer_sets(), (self.lr, self.head_lr), strict=True)
            for skip in (False, True)
        ]
        return recipes.configure(self.recipe, [g for g in groups if g["params"]], self.lr)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Upstream's ``global_clipnorm`` of each optimizer: the trunk's and the heads' gradient norms are
        clipped separately (any other algorithm: Lightning's)."""
        if not gradient_clip_val or gradient_clip_algorithm not in (None, "norm"):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        for named in self.optimizer_sets():
            torch.nn.utils.clip_grad_norm_([p for _, p in named], float(gradient_clip_val))

    def _losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        tracks = self(batch).float()
        loss, rna_loss, atac_loss = finetune_loss(
            tracks,
            batch["target"],
            batch["mask"],
            batch["rna"],
            self.total_weight,
            self.atac_scale if self.predict_atac else 0.0,
            self.loss_type,
        )
        return loss, rna_loss, atac_loss, tracks

    def batch_loss(self, batch: dict[str, Tensor]) -> Tensor:
        return self._losses(batch)[0]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, rna_loss, atac_loss, _ = self._losses(batch)
        self._log("train_loss", loss, batch)
        self._log("train_loss_rna", rna_loss, batch)
        self._log("train_loss_atac", atac_loss, batch)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, rna_loss, _, tracks = self._losses(batch)
        where = batch["mask"] > 0
        self.val_pearson.update(tracks[..., 1].flatten(), batch["rna"].flatten())
        self.val_pearson_atac.update(tracks[..., 0][where], batch["target"][where])
        self._log("val_loss", loss, batch)
        self._log("val_loss_rna", rna_loss, batch)
        self._log("val_pearson", self.val_pearson, batch)
        self._log("val_pearson_atac", self.val_pearson_atac, batch)


def load_pretrained(model: EpiBERT, path: Path) -> None:
    """Load every tensor but the expression head's from a trained model (``train/model.pt``) and
    re-initialise the expression head; a model of another size is a ConfigError naming both."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state, saved = payload["model_state_dict"], payload["config"]
    where = f"{path} (arch {saved.get('arch_name')!r})"
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ConfigError(f"{where} does not fit the fine-tuning model: {error}") from None
    foreign = [k for k in missing if not k.startswith(HEAD_PREFIX)] + list(unexpected)
    if foreign:
        raise ConfigError(f"{where} does not fit the fine-tuning model: keys {sorted(foreign)}")
    for name, module in model.named_modules():
        if name.startswith(HEAD_PREFIX) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    log.info("trunk and ATAC head from %s; expression head re-initialised", where)


def make_module(run: Run, model: EpiBERT, pretrained: Path | None = None) -> MaskedATACPretraining:
    """The run's module; a fine-tuning run given ``pretrained`` (its ``init_from`` model) starts from it."""
    cfg = run.train
    hyper = {
        "lr": float(cfg.get("lr", 1e-3)),
        "weight_decay": float(cfg.get("weight_decay", 1e-5)),
        "total_weight": float(cfg.get("total_weight", 0.15)),
        "loss_type": str(cfg.get("loss_type", "poisson_multinomial")),
        "recipe": Recipe.from_train(dict(cfg)),
    }
    if not is_finetune(run.arch):
        return MaskedATACPretraining(model, **hyper)
    if pretrained is not None:
        load_pretrained(model, Path(pretrained))
    head_lr = run.arch.get("head_lr")
    return ExpressionFinetuning(
        model,
        **hyper,
        atac_scale=float(run.arch.get("atac_scale", 0.1)),
        head_lr=None if head_lr is None else float(head_lr),
        predict_atac=bool(run.arch.get("predict_atac", True)),
    )
