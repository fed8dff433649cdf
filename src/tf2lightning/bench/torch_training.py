"""The torch side of the training benchmark: a plain loop vs Lightning, both in this one child process.

Two forms, by what the family's ``bench`` module declares:

* per step (the default): one fixed batch (``bench.train_batch``) on the device, the model starting from
  the converted weights. The plain loop is the family's own step (``bench.torch_plain_step``, for families
  ported from plain PyTorch) or, for TF families, the LightningModule's ``batch_loss`` and optimizer
  outside a Trainer; Lightning is ``Trainer.fit`` on the same batch, timed step by step by a callback.
* whole runs (``bench.torch_fit``): the family's own plain loop and its Lightning loop each train over the
  data from the start, validation and checkpointing included; items = examples trained.

FLOPs are counted on one plain-loop step (or one whole plain run, per example trained) and stand for both
loops, which do the same math on the same model and data.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tf2lightning.bench.family_hooks import bench_module
from tf2lightning.bench.flops import count_flops
from tf2lightning.bench.mfu import flops_per_item, with_flops
from tf2lightning.bench.protocol import Variants
from tf2lightning.bench.timing import Timing, from_durations, measure
from tf2lightning.bench.torch_env import load_npz, pick_device, sync_for, to_device
from tf2lightning.families import family_module
from tf2lightning.run import Run, run_from_dict
from tf2lightning.stages.weights import load_port

WHOLE_RUN_REPEATS = 3
"""Timed whole runs per loop at most (after one warm-up run each): they take seconds, not milliseconds."""


def training(request: dict[str, Any], variants: Variants) -> None:
    run = run_from_dict(request["run"])
    module = bench_module(run.family)
    if module is not None and hasattr(module, "torch_fit"):
        whole_runs(run, request, variants, module.torch_fit)
    else:
        steps(run, request, variants)


def optimizer_of(module: Any) -> torch.optim.Optimizer:
    """The first optimizer of a LightningModule's ``configure_optimizers`` (any of its return forms)."""
    configured = module.configure_optimizers()
    while not isinstance(configured, torch.optim.Optimizer):
        if isinstance(configured, Mapping):
            configured = configured["optimizer"]
        elif isinstance(configured, list | tuple):
            configured = configured[0]
        else:
            raise TypeError(f"cannot find an optimizer in configure_optimizers() -> {type(configured)}")
    return configured


def training_batch(run: Run, arrays: Mapping[str, np.ndarray]) -> Any:
    """The family's ``bench.torch_batch(run, arrays)``, else a dict of tensors, as its DataModule yields."""
    module = bench_module(run.family)
    if module is not None and hasattr(module, "torch_batch"):
        return module.torch_batch(run, arrays)
    return {k: torch.as_tensor(v) for k, v in arrays.items()}


def plain_step(run: Run, model: torch.nn.Module, batch: Any) -> Callable[[], Any]:
    """One plain-loop optimizer step: the family's own (``bench.torch_plain_step``), else zero_grad, the
    LightningModule's ``batch_loss(batch)``, backward, the run's gradient-norm clipping (as Lightning
    applies it) and the LightningModule's optimizer."""
    module = bench_module(run.family)
    if module is not None and hasattr(module, "torch_plain_step"):
        return module.torch_plain_step(run, model, batch)
    lit = family_module(run.family, "lit").make_module(run, model)
    if not hasattr(lit, "batch_loss"):
        raise NotImplementedError(
            f"family {run.family!r}: {type(lit).__name__} has no batch_loss(batch), which the plain loop "
            "of the training benchmark calls (see tf2lightning.bench)"
        )
    optimizer = optimizer_of(lit)
    clip = run.train.get("gradient_clip")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        lit.batch_loss(batch).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        optimizer.step()

    return step


def steps(run: Run, request: dict[str, Any], variants: Variants) -> None:
    """Per-step times of the plain loop and of Lightning on one batch, from the same converted weights."""
    paths, device = request["paths"], pick_device(request)
    arrays = load_npz(paths["batch"])
    items = len(next(iter(arrays.values())))
    warmup, repeats = int(request["warmup"]), int(request["repeats"])
    counted: dict[str, float | None] = {}

    def plain() -> Timing:
        model = load_port(run, paths["weights"]).to(device).train()
        step = plain_step(run, model, to_device(training_batch(run, arrays), device))
        counted["per_item"] = flops_per_item(step, items)
        timing = measure(step, items=items, warmup=warmup, repeats=repeats, sync=sync_for(device))
        return with_flops(timing, counted["per_item"], device)

    def lightning() -> Timing:
        timing = lightning_steps(run, paths["weights"], arrays, device, warmup, repeats)
        return with_flops(timing, counted.get("per_item"), device)

    variants.record("plain loop", plain)
    variants.record("lightning", lightning)


def lightning_steps(
    run: Run,
    weights: str | Path,
    arrays: Mapping[str, np.ndarray],
    device: torch.device,
    warmup: int,
    repeats: int,
) -> Timing:
    """Per-step times of ``Trainer.fit`` on one batch (fp32, the run's gradient clipping as the train stage
    sets it; no logger, checkpoint or validation)."""
    from tf2lightning.bench.lightning_steps import step_seconds

    module = family_module(run.family, "lit").make_module(run, load_port(run, weights).train())
    clip = run.train.get("gradient_clip")
    seconds = step_seconds(module, training_batch(run, arrays), warmup + repeats, device, gradient_clip=clip)
    items = len(next(iter(arrays.values())))
    return from_durations(seconds, items=items, warmup=warmup, unit="examples")


def whole_runs(
    run: Run,
    request: dict[str, Any],
    variants: Variants,
    fit: Callable[..., float],
) -> None:
    """``fit(run, paths, out_dir, lightning=...) -> examples trained``, each loop timed over whole runs in
    fresh directories (nothing resumes), after one warm-up run. The FLOPs per example are counted on an
    extra one-epoch plain run (they do not depend on the number of epochs)."""
    paths = request["paths"]
    repeats = min(int(request["repeats"]), WHOLE_RUN_REPEATS)
    device = pick_device(request)  # for the peak only: the family's loops place themselves

    def once(run: Run, lightning: bool, trained: list[float]) -> None:
        with tempfile.TemporaryDirectory(dir=paths.get("scratch")) as tmp:
            trained.append(float(fit(run, paths, Path(tmp), lightning=lightning)))

    def timed(lightning: bool) -> Timing:
        trained: list[float] = []
        timing = measure(lambda: once(run, lightning, trained), items=1, warmup=1, repeats=repeats)
        return Timing(timing.samples, trained[-1], "examples")

    counted: dict[str, float | None] = {}

    def plain() -> Timing:
        trained: list[float] = []
        one_epoch = dataclasses.replace(run, train={**run.train, "max_epochs": 1})
        flops = count_flops(lambda: once(one_epoch, False, trained))
        counted["per_item"] = flops / trained[0] if flops > 0 and trained[0] else None
        return with_flops(timed(False), counted["per_item"], device)

    variants.record("plain loop", plain)
    variants.record("lightning", lambda: with_flops(timed(True), counted.get("per_item"), device))
