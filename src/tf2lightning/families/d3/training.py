"""One SEDD training step, shared by the plain PyTorch loop and the LightningModule (torch only).

Both sides draw a step's randomness from ``diffusion.step_generator(seed, step)``, set the learning rate
with ``diffusion.lr_at`` and update the EMA with ``ema_update``: from the same state and batch they take
the same step, and a resumed run continues the same random stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tf2lightning.families.d3.diffusion import (
    Graph,
    Noise,
    ema_decay_at,
    loss_per_sequence,
    lr_at,
    make_graph,
    make_noise,
    step_generator,
)
from tf2lightning.run import Run


@dataclass(frozen=True)
class Settings:
    """Optimisation and diffusion settings of one run (``run.arch`` diffusion keys, ``run.train`` knobs)."""

    graph: Graph
    noise: Noise
    lr: float
    warmup: int
    ema_decay: float
    grad_clip: float | None
    weight_decay: float
    seed: int
    accum: int = 1

    @classmethod
    def from_run(cls, run: Run, train: dict | None = None) -> Settings:
        """``train`` overrides ``run.train`` (the plain loop passes its ``legacy_*`` settings)."""
        cfg = dict(run.train) if train is None else train
        clip = cfg.get("gradient_clip")
        graph, noise = diffusion_of(run)
        return cls(
            graph=graph,
            noise=noise,
            lr=float(cfg.get("lr", 3e-4)),
            warmup=int(cfg.get("warmup", 0)),
            ema_decay=float(cfg.get("ema_decay", 0.9999)),
            grad_clip=None if clip is None else float(clip),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
            seed=run.seed,
            accum=int(cfg.get("accumulate_grad_batches", 1)),
        )

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.AdamW:
        """Upstream's AdamW (betas 0.9/0.999, eps 1e-8) over ``params``: the model's, then the noise's."""
        return torch.optim.AdamW(
            params, lr=self.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=self.weight_decay
        )


def diffusion_of(run: Run) -> tuple[Graph, Noise]:
    """Graph and noise of an upstream run folder's ``hydra/config.yaml``, else of ``run.arch``."""
    from tf2lightning.families.d3 import runfolder

    folder = runfolder.find(run)
    if folder is not None:
        config = runfolder.read_config(runfolder.resolve(folder)[0])
        graph = {"absorb": "absorbing"}.get(config["graph"]["type"], config["graph"]["type"])
        noise = config["noise"]
        return make_graph(graph), make_noise(
            noise["type"], noise.get("sigma_min", 1e-4), noise.get("sigma_max", 20), noise.get("eps", 1e-3)
        )
    arch = run.arch
    noise = make_noise(
        str(arch.get("noise", "geometric")),
        arch.get("sigma_min", 1e-4),
        arch.get("sigma_max", 20.0),
        arch.get("noise_eps", 1e-3),
    )
    return make_graph(str(arch.get("graph", "uniform"))), noise


def noise_parameter() -> nn.Parameter:
    """Upstream's ``GeometricNoise.empty``: a parameter without gradients, the optimizer's last one."""
    return nn.Parameter(torch.tensor(0.0))


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters upstream's EMA follows: ``requires_grad`` ones, in ``parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def batch_loss(
    model: nn.Module, settings: Settings, seq: Tensor, labels: Tensor, step: int, micro: int = 0
) -> Tensor:
    """The mean score-entropy loss of micro-batch ``micro`` of optimizer step ``step``, with its random
    stream (``step * accum + micro``: without accumulation, the stream of ``step``)."""
    generator = step_generator(settings.seed, step * settings.accum + micro)
    losses = loss_per_sequence(model, settings.graph, settings.noise, seq.long(), labels.float(), generator)
    return losses.mean()


def set_lr(optimizer: torch.optim.Optimizer, settings: Settings, step: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, settings.lr, settings.warmup)


@torch.no_grad()
def ema_update(shadow: Iterable[Tensor], params: Iterable[Tensor], updates: int, decay: float) -> None:
    """``shadow <- shadow - (1 - d) (shadow - param)`` with the warm-started decay after ``updates``."""
    one_minus = 1.0 - ema_decay_at(updates, decay)
    for s, p in zip(shadow, params, strict=True):
        s.sub_(one_minus * (s - p))


def plain_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    shadow: list[Tensor],
    settings: Settings,
    seq: Tensor,
    labels: Tensor,
    step: int,
) -> float:
    """One plain-loop step on one batch (``settings.accum`` must be 1): see :func:`accumulated_step`."""
    return accumulated_step(model, optimizer, shadow, settings, [(seq, labels)], step)


def accumulated_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    shadow: list[Tensor],
    settings: Settings,
    batches: Sequence[tuple[Tensor, Tensor]],
    step: int,
) -> float:
    """One optimizer step over ``settings.accum`` micro-batches in upstream's order: lr; per micro-batch
    loss / accum and backward; clip, step, EMA. Returns the micro-batches' mean loss."""
    if len(batches) != settings.accum:
        raise ValueError(
            f"step {step}: {len(batches)} micro-batches, accumulate_grad_batches is {settings.accum}"
        )
    model.train()
    set_lr(optimizer, settings, step)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for micro, (seq, labels) in enumerate(batches):
        loss = batch_loss(model, settings, seq, labels, step, micro)
        (loss / settings.accum).backward()
        total += float(loss.detach())
    if settings.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
    optimizer.step()
    ema_update(shadow, trainable(model), step + 1, settings.ema_decay)
    return total / settings.accum
