"""Activation checkpointing of the port's blocks (``activation_checkpointing: true``), for the memory of
long windows: in training, a block keeps only its input and recomputes its activations in the backward.

The recomputation sees the same dropout draws (the RNG state is restored) and leaves BatchNorm's running
statistics as one forward leaves them: while recomputing, each BatchNorm's ``momentum`` is 0 and its
``num_batches_tracked`` is put back, so a step with checkpointing equals one without.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


@contextmanager
def frozen_batchnorm(block: nn.Module) -> Iterator[None]:
    """While inside: no BatchNorm in ``block`` updates its running statistics or batch count."""
    norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [
        (m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms
    ]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def run_block(block: nn.Module, x: Tensor, enabled: bool) -> Tensor:
    """``block(x)``, checkpointed when ``enabled`` and ``block`` trains with gradients on."""
    if not (enabled and block.training and torch.is_grad_enabled()):
        return block(x)

    def contexts() -> tuple[AbstractContextManager[None], AbstractContextManager[None]]:
        return nullcontext(), frozen_batchnorm(block)  # (forward, recomputation)

    return checkpoint(block, x, use_reentrant=False, context_fn=contexts)
