"""The plain loop's own training step: loss, learning rate and validation, written apart from :mod:`recipe`.

The plain loop is the legacy path and the source of truth; the Lightning side (:mod:`lit`) uses
:class:`recipe.Recipe`. Keeping two implementations is deliberate: the loop comparison (:mod:`loop_parity`)
then tests the Lightning recipe against this one, not a function against itself. Only the parsed config
(:class:`recipe.RecipeConfig`), torch's optimizers and the seeded data loaders are shared. What both must
agree on is the specification below, including the order of the random draws:

- per batch, Gaussian input noise ``noise_std * N(0, 1)`` from a torch generator seeded with the run's seed
  (one ``randn`` of the batch's shape), then MixUp from a numpy generator seeded the same: one
  ``beta(alpha, alpha)`` draw ``lam`` and one ``permutation``; inputs and the teacher's probabilities
  are mixed ``lam * a + (1 - lam) * a[perm]``;
- cross-entropy against label-smoothed targets; because it is linear in the target, MixUp's mixed targets
  are computed here as ``lam * CE(y) + (1 - lam) * CE(y[perm])`` (torch's ``label_smoothing``);
- distillation ``T^2 * KL(p_T || q_T)`` with ``p_T = softmax(log(max(p, 1e-8)) / T)`` of the mixed teacher
  and ``q_T = softmax(logits / T)``, weighted ``(1 - w) * CE + w * KD``;
- consistency: the squared distance between the augmented and the clean input's class probabilities;
- learning rate ``lr * f(step)``: linear warm-up over ``round(warmup_fraction * total)`` steps
  (``(step + 1) / warmup``), then cosine from 1 to ``min_lr_ratio``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.errors import ConfigError
from tf2lightning.families.tabular.recipe import RecipeConfig


class PlainStep:
    """The plain loop's loss and learning rate for one run; its generators are seeded with ``seed``."""

    def __init__(self, config: RecipeConfig, seed: int) -> None:
        self.config = config
        self.noise = torch.Generator().manual_seed(seed)
        self.mixup = np.random.default_rng(seed)

    def loss(self, model: nn.Module, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss of one batch and its parts (``ce``, ``kd``, ``consistency``)."""
        cfg = self.config
        x, labels, teacher = batch["x"], batch["label"], batch.get("teacher")
        if cfg.distill_weight > 0 and teacher is None:
            raise ConfigError("distill_weight > 0 needs the teacher's probabilities in every batch")
        if cfg.noise_std > 0:
            x = x + cfg.noise_std * torch.randn(x.shape, generator=self.noise)
        lam, perm = 1.0, None
        if cfg.mixup_alpha > 0:
            lam = float(self.mixup.beta(cfg.mixup_alpha, cfg.mixup_alpha))
            perm = torch.from_numpy(self.mixup.permutation(len(x)))
            x = lam * x + (1 - lam) * x[perm]
            if teacher is not None:
                teacher = lam * teacher + (1 - lam) * teacher[perm]
        logits = model(x)
        ce = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
        if perm is not None:
            other = F.cross_entropy(logits, labels[perm], label_smoothing=cfg.label_smoothing)
            ce = lam * ce + (1 - lam) * other
        parts, loss = {"ce": ce}, ce
        if cfg.distill_weight > 0:
            t = cfg.temperature
            target = F.softmax(torch.log(torch.clamp(teacher, min=1e-8)) / t, dim=1)
            kd = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean") * t**2
            parts["kd"] = kd
            loss = (1 - cfg.distill_weight) * ce + cfg.distill_weight * kd
        if cfg.consistency_weight > 0:
            clean = F.softmax(model(batch["x"]), dim=1)
            difference = F.softmax(logits, dim=1) - clean
            parts["consistency"] = (difference * difference).sum(dim=1).mean()
            loss = loss + cfg.consistency_weight * parts["consistency"]
        return loss, parts

    def learning_rate(self, step: int, total_steps: int) -> float:
        """The rate of optimizer step ``step`` (0-based) of ``total_steps``."""
        cfg = self.config
        warmup = round(cfg.warmup_fraction * total_steps)
        if step < warmup:
            factor = (step + 1) / warmup
        else:
            done = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * (1 + math.cos(math.pi * done)) / 2
        return cfg.lr * factor

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """AdamW (decoupled weight decay) or Adam (L2 penalty)."""
        kind = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.config.optimizer]
        return kind(model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)


def validation_metrics(model: nn.Module, batches: Iterable[Mapping[str, Tensor]]) -> dict[str, float]:
    """Example-weighted validation cross-entropy (no smoothing) and accuracy, in eval mode."""
    model.eval()
    loss_sum, correct, count = 0.0, 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits, labels = model(batch["x"]), batch["label"]
            n = len(labels)
            loss_sum += float(F.cross_entropy(logits, labels)) * n
            correct += float((logits.argmax(dim=1) == labels).float().mean()) * n
            count += n
    return {"val_loss": loss_sum / max(1, count), "val_acc": correct / max(1, count)}
