"""The plain PyTorch training loop (the legacy path): what the standard Lightning Trainer does, by hand.

Per epoch: train over the shuffled train loader (the step's learning rate, ``zero_grad``, the loss of
:mod:`plain_step` (its own code, not the Lightning side's recipe), ``backward``, optional gradient-norm
clipping, optimizer step), then validate; the best model by validation loss (strictly lower) is
checkpointed, and training stops after ``patience`` epochs without improvement — the semantics of
Lightning's ``ModelCheckpoint`` and ``EarlyStopping`` in ``stages.train``.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tf2lightning.core.atomic import atomic_path
from tf2lightning.families.tabular.datamodule import TabularDataModule
from tf2lightning.families.tabular.plain_step import PlainStep, validation_metrics
from tf2lightning.families.tabular.recipe import RecipeConfig
from tf2lightning.run import Run

log = logging.getLogger(__name__)


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA), as ``lightning.seed_everything`` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_plain(
    run: Run, model: nn.Module, datamodule: TabularDataModule, work_dir: Path
) -> list[dict[str, float]]:
    """Train ``model`` in place; return per-epoch history rows and leave the best weights loaded.

    ``run.train``: ``max_epochs``, ``patience`` (None: no early stopping), ``gradient_clip``,
    ``deterministic``, and the step's fields (see :class:`recipe.RecipeConfig` and :mod:`plain_step`).
    """
    cfg = run.train
    max_epochs, patience, clip = int(cfg["max_epochs"]), cfg.get("patience"), cfg.get("gradient_clip")
    torch.use_deterministic_algorithms(bool(cfg.get("deterministic", False)))
    step_rule = PlainStep(RecipeConfig.from_run(run), run.seed)
    datamodule.setup("fit")
    train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
    optimizer = step_rule.optimizer(model)
    total_steps = len(train_loader) * max_epochs
    best_path = Path(work_dir) / "checkpoints" / "plain_best.pt"
    best_loss, waited, step, history = math.inf, 0, 0, []
    for epoch in range(max_epochs):
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        for batch in train_loader:
            for group in optimizer.param_groups:
                group["lr"] = step_rule.learning_rate(step, total_steps)
            optimizer.zero_grad()
            loss, parts = step_rule.loss(model, batch)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
            optimizer.step()
            step += 1
            n = len(batch["label"])
            for key, value in {"loss": loss, **parts}.items():
                sums[f"train_{key}"] = sums.get(f"train_{key}", 0.0) + float(value.detach()) * n
            seen += n
        metrics = validation_metrics(model, val_loader)
        train_means = {key: total / max(1, seen) for key, total in sums.items()}
        history.append({"epoch": float(epoch), "step": float(step), **metrics, **train_means})
        log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in history[-1].items()})
        if metrics["val_loss"] < best_loss:
            best_loss, waited = metrics["val_loss"], 0
            with atomic_path(best_path) as tmp:
                torch.save({"model_state_dict": model.state_dict(), "epoch": epoch}, tmp)
        else:
            waited += 1
            if patience and waited >= int(patience):
                log.info("early stopping after epoch %d (best val_loss %.5f)", epoch, best_loss)
                break
    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["model_state_dict"])
    return history
