"""The training recipe of the Lightning side: every training feature in one place.

The LightningModule (:mod:`lit`) only moves batches, steps the optimizer and logs; the loss (Gaussian input
noise, MixUp, label smoothing, distillation with temperature and an optional consistency penalty), the
optimizer (AdamW/Adam), the schedule (linear warm-up then cosine) and the validation metrics come from
:class:`Recipe`. The plain loop implements the same specification with its own code (:mod:`plain_step`),
so the loop comparison tests one against the other. The random draws (noise, MixUp's ``lambda`` and
pairing) come from the recipe's own seeded generators, so both draw the same numbers whatever else
consumes the global RNG; dropout uses the global torch RNG, seeded identically by both loops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.errors import ConfigError
from tf2lightning.run import Run


@dataclass(frozen=True)
class RecipeConfig:
    """The training features; names and defaults are those of the family's ``train`` config section."""

    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.0
    mixup_alpha: float = 0.2
    noise_std: float = 0.05
    label_smoothing: float = 0.05
    distill_weight: float = 0.5
    temperature: float = 2.0
    consistency_weight: float = 0.0

    @classmethod
    def from_run(cls, run: Run) -> RecipeConfig:
        """The recipe fields of ``run.train`` (other keys, e.g. ``max_epochs``, belong to the loop)."""
        given = {f.name: type(f.default)(run.train[f.name]) for f in fields(cls) if f.name in run.train}
        config = cls(**given)
        if config.optimizer not in ("adamw", "adam"):
            raise ConfigError(f"config key families.tabular.train.optimizer: unknown {config.optimizer!r}")
        return config


class Recipe:
    """Loss, optimizer, schedule and validation metrics for ``n_classes`` classes, seeded by ``seed``."""

    def __init__(self, config: RecipeConfig, n_classes: int, seed: int) -> None:
        self.config = config
        self.n_classes = n_classes
        self.seed = seed
        self.noise_generator = torch.Generator().manual_seed(seed)
        self.mixup_rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------------------------- the loss
    def soft_targets(self, labels: Tensor) -> Tensor:
        """One-hot labels with label smoothing: ``(1 - eps) * onehot + eps / K``."""
        eps = self.config.label_smoothing
        return F.one_hot(labels, self.n_classes).float() * (1 - eps) + eps / self.n_classes

    def augment(
        self, x: Tensor, targets: Tensor, teacher: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Gaussian input noise, then MixUp of inputs, targets and teacher probabilities with one pairing."""
        cfg = self.config
        if cfg.noise_std > 0:
            noise = torch.randn(x.shape, generator=self.noise_generator).to(x.device, x.dtype)
            x = x + cfg.noise_std * noise
        if cfg.mixup_alpha > 0:
            lam = float(self.mixup_rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
            perm = torch.from_numpy(self.mixup_rng.permutation(len(x))).to(x.device)
            x = lam * x + (1 - lam) * x[perm]
            targets = lam * targets + (1 - lam) * targets[perm]
            if teacher is not None:
                teacher = lam * teacher + (1 - lam) * teacher[perm]
        return x, targets, teacher

    def distillation(self, logits: Tensor, teacher: Tensor) -> Tensor:
        """``T^2 * KL(teacher_T || student_T)``; the teacher's probabilities are tempered as
        ``softmax(log p / T)``."""
        t = self.config.temperature
        teacher_t = (teacher.clamp_min(1e-8).log() / t).log_softmax(-1)
        student_t = (logits / t).log_softmax(-1)
        return (teacher_t.exp() * (teacher_t - student_t)).sum(-1).mean() * t * t

    def loss(self, model: nn.Module, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss of one batch and its parts (for logging)."""
        cfg = self.config
        teacher = batch.get("teacher")
        if cfg.distill_weight > 0 and teacher is None:
            raise ConfigError("distill_weight > 0 needs the teacher's probabilities in every batch")
        x, targets, teacher = self.augment(batch["x"], self.soft_targets(batch["label"]), teacher)
        logits = model(x)
        ce = -(targets * logits.log_softmax(-1)).sum(-1).mean()
        parts = {"ce": ce}
        loss = ce
        if cfg.distill_weight > 0:
            parts["kd"] = self.distillation(logits, teacher)
            loss = (1 - cfg.distill_weight) * ce + cfg.distill_weight * parts["kd"]
        if cfg.consistency_weight > 0:
            # The augmented view's prediction should agree with the clean input's.
            clean = model(batch["x"])
            parts["consistency"] = (logits.softmax(-1) - clean.softmax(-1)).pow(2).sum(-1).mean()
            loss = loss + cfg.consistency_weight * parts["consistency"]
        return loss, parts

    # ---------------------------------------------------------------------- optimizer and schedule
    def optimizer(self, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """AdamW (decoupled weight decay) or Adam (L2 penalty) with the configured rate and decay."""
        kind = torch.optim.AdamW if self.config.optimizer == "adamw" else torch.optim.Adam
        return kind(parameters, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Linear warm-up over ``warmup_fraction`` of the steps, then cosine down to ``min_lr_ratio``."""
        warmup = round(self.config.warmup_fraction * total_steps)
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        floor = self.config.min_lr_ratio
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def scheduler(
        self, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> torch.optim.lr_scheduler.LambdaLR:
        """A per-step scheduler of :meth:`lr_factor`."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_factor(step, total_steps))

    # ------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The generators' states, so a resumed run draws what an uninterrupted one would."""
        mixup = json.dumps(self.mixup_rng.bit_generator.state)  # 128-bit ints: kept as text
        return {"noise": self.noise_generator.get_state(), "mixup": mixup}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.noise_generator.set_state(state["noise"])
        self.mixup_rng.bit_generator.state = json.loads(state["mixup"])


class EpochTotals:
    """Example-weighted means over an epoch: the training loss, or validation loss and accuracy."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, Tensor], n: int) -> None:
        """Add batch means ``values`` of a batch of ``n`` examples."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
        self.count += n

    def add_predictions(self, logits: Tensor, labels: Tensor) -> None:
        """Validation: plain cross-entropy (no smoothing) and accuracy of one batch."""
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        self.add({"val_loss": loss, "val_acc": accuracy}, len(labels))

    def means(self) -> dict[str, float]:
        return {key: total / max(1, self.count) for key, total in self.sums.items()}


def make_recipe(run: Run, n_classes: int) -> Recipe:
    """The run's recipe, seeded with the run's seed."""
    return Recipe(RecipeConfig.from_run(run), n_classes, run.seed)
