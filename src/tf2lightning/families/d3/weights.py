"""An upstream D3 checkpoint -> the port's ``state_dict``: the identity table.

The port has upstream's names and shapes, so the map is one identity rule (``apply`` still checks every
tensor is used once, with its shape and dtype). ``read_source`` takes an upstream run folder (its newest
``checkpoints/checkpoint_N.pth``) or one checkpoint file (``runfolder``), drops the ``module.`` prefix of
a ``DistributedDataParallel`` save and returns the EMA weights (``arch.legacy_weights: model``: the raw
ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tf2lightning.core.weight_map import Rule, WeightMap
from tf2lightning.run import Run

RULES = (Rule(r"(.+)", r"\1"),)


def weight_map(run: Run) -> WeightMap:
    del run
    return WeightMap(RULES)


def read_source(run: Run, path: Path) -> dict[str, np.ndarray]:
    """The chosen weights of the run folder or checkpoint file ``path``."""
    from tf2lightning.families.d3 import runfolder

    _, checkpoint_path = runfolder.resolve(Path(path))
    checkpoint = runfolder.load_checkpoint(checkpoint_path)
    which = str(run.arch.get("legacy_weights", "ema"))
    return {k: v.numpy() for k, v in runfolder.weights_of(checkpoint, which, checkpoint_path).items()}
