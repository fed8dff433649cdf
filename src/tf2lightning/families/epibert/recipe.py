"""Upstream's training recipe as options of the ``train`` section (torch; no Lightning).

Upstream's scripts (``train_model_atac_pretrain.py``, ``train_model_rampage_finetune.py``) set the learning
rate every step with ``schedulers.cos_w_warmup``: linear from 0.1 % of the base rate to the base rate over
``warmup_steps``, then a cosine to ``decay_frac`` of it over ``decay_steps`` (flat after). The optimizer is
Adam (``epsilon``, no weight decay) with a global gradient-norm clip (``train.gradient_clip``, Lightning's
``gradient_clip_val``). ``loss_type: poisson`` is ``keras.losses.Poisson`` on the masked bins.
The defaults keep this package's earlier recipe (constant rate, AdamW, ``poisson_multinomial``): a
5,000-step warm-up does not fit a few-epoch demo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adamw"  # or "adam" (upstream's: no weight decay)
    epsilon: float = 1e-8
    weight_decay: float = 1e-5
    schedule: str = "constant"  # or "cos_w_warmup" (upstream's)
    warmup_steps: int = 5000
    decay_steps: int = 500000
    decay_frac: float = 0.1

    @classmethod
    def from_train(cls, train: dict[str, Any]) -> Recipe:
        """The recipe of a run's ``train`` section (absent keys keep the defaults)."""
        fields = {k: type(getattr(cls, k))(train[k]) for k in cls.__dataclass_fields__ if k in train}
        return cls(**fields)


def cos_w_warmup(step: int, warmup_steps: int, decay_steps: int, decay_frac: float) -> float:
    """Upstream's learning-rate factor at ``step`` (times the base rate)."""
    if step < warmup_steps:
        return 0.001 + step / warmup_steps * (1.0 - 0.001)
    decayed = min(step - warmup_steps, decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * decayed / decay_steps))
    return (1.0 - decay_frac) * cosine + decay_frac


def optimizer(recipe: Recipe, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """Adam (upstream's) or AdamW over parameter ``groups``."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, eps=recipe.epsilon)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, eps=recipe.epsilon, weight_decay=recipe.weight_decay)
    raise ValueError(f"train.optimizer must be 'adam' or 'adamw', not {recipe.optimizer!r}")


def configure(recipe: Recipe, groups: list[dict[str, Any]], lr: float) -> Any:
    """What ``configure_optimizers`` returns: the optimizer, with upstream's per-step schedule if asked."""
    opt = optimizer(recipe, groups, lr)
    if recipe.schedule == "constant":
        return opt
    if recipe.schedule != "cos_w_warmup":
        raise ValueError(f"train.schedule must be 'constant' or 'cos_w_warmup', not {recipe.schedule!r}")

    def factor(step: int) -> float:
        return cos_w_warmup(step, recipe.warmup_steps, recipe.decay_steps, recipe.decay_frac)

    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
