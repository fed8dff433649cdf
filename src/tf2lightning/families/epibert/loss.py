"""The source's losses (torch): ``poisson_multinomial`` (Basenji's) for pretraining and fine-tuning.

Pretraining: the source's train step gathers the masked bins of the whole batch into one vector and applies
``poisson_multinomial(total_weight=0.15, epsilon=1e-6, rescale=True)`` (its default ``loss_type``):
a multinomial term on the shape plus ``total_weight`` times a Poisson term on the total count, each
divided by the number of bins, rescaled by ``2 / (1 + total_weight)``.

Fine-tuning (``epibert_rampage_finetune`` with ``predict_atac``): the same loss of the expression profile
per example (all bins), averaged over the batch, plus ``atac_scale`` times the masked-ATAC loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

KERAS_EPSILON = 1e-7  # keras.losses.poisson adds it inside the log


def poisson_multinomial(
    target: Tensor, pred: Tensor, total_weight: float = 0.15, epsilon: float = 1e-6
) -> Tensor:
    """Loss of predicted rates ``pred`` for counts ``target`` along the last axis (the bins), averaged
    over any leading axes (a 1-D vector: the pooled masked bins)."""
    n = target.shape[-1]
    target, pred = target.float() + epsilon, pred.float() + epsilon
    s_true, s_pred = target.sum(-1), pred.sum(-1)
    poisson = (s_pred - s_true * torch.log(s_pred + KERAS_EPSILON)) / n
    multinomial = -(target * torch.log(pred / s_pred.unsqueeze(-1))).sum(-1) / n
    return ((multinomial + total_weight * poisson) * 2.0 / (1.0 + total_weight)).mean()


def poisson(target: Tensor, pred: Tensor, total_weight: float = 0.15) -> Tensor:
    """``keras.losses.Poisson``, averaged: ``pred - target * log(pred + 1e-7)`` (upstream's
    ``loss_type="poisson"``, what its published scripts pass); ``total_weight`` is not used."""
    pred = pred.float()
    return (pred - target.float() * torch.log(pred + KERAS_EPSILON)).mean()


LOSSES = {"poisson_multinomial": poisson_multinomial, "poisson": poisson}


def masked_loss(
    target: Tensor,
    pred: Tensor,
    mask: Tensor,
    total_weight: float = 0.15,
    loss_type: str = "poisson_multinomial",
) -> Tensor:
    """The ``loss_type`` loss over the bins where ``mask`` is set, pooled over the batch."""
    where = mask > 0
    return LOSSES[loss_type](target[where], pred[where], total_weight)


def finetune_loss(
    tracks: Tensor,
    target: Tensor,
    mask: Tensor,
    rna: Tensor,
    total_weight: float = 0.15,
    atac_scale: float = 0.1,
    loss_type: str = "poisson_multinomial",
) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss, expression loss, masked-ATAC loss)`` of the fine-tuning model's ``tracks`` (N, bins, 2)."""
    rna_loss = LOSSES[loss_type](rna, tracks[..., 1], total_weight)
    atac_loss = masked_loss(target, tracks[..., 0], mask, total_weight, loss_type)
    return rna_loss + atac_scale * atac_loss, rna_loss, atac_loss
