"""D3 benchmark factories (see :mod:`tf2lightning.bench`): the plain loop's own step and reader; torch is
imported lazily.

Training is timed per step on one batch: ``training.plain_step`` (the plain loop's step) vs
``lit.D3Module`` under ``Trainer.fit``, both with the run's ``train`` settings. Loading compares the plain
loop's reader (the whole upstream ``.h5``/``.npz`` split read into memory, then shuffled index batches, as
``legacy.train_model`` does) with the HDF5 DataModule.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.hdf5_store import first_rows
from tf2lightning.run import Run

TASKS = ("training", "loading", "convert")


def train_batch(run: Run, h5: Path, batch_size: int) -> dict[str, np.ndarray]:
    """The first ``batch_size`` training rows: ``seq`` uint8 ``(B, L)``, ``activity`` float32 ``(B, n)``."""
    return first_rows(h5, "train", batch_size, ("seq", "activity"))


def torch_plain_step(run: Run, model: Any, batch: dict[str, Any]) -> Callable[[], float]:
    """Successive steps of the plain loop (``training.plain_step``: lr warm-up, loss, backward, clipping,
    AdamW, EMA) on ``batch``, with the settings Lightning trains with (``run.train``)."""
    from tf2lightning.families.d3.training import Settings, noise_parameter, plain_step, trainable

    settings = Settings.from_run(run)
    optimizer = settings.optimizer([*model.parameters(), noise_parameter()])
    shadow = [p.detach().clone() for p in trainable(model)]
    counter = itertools.count()
    seq, activity = batch["seq"], batch["activity"]
    return lambda: plain_step(model, optimizer, shadow, settings, seq, activity, next(counter))


@dataclass(frozen=True)
class UpstreamBatches:
    """One pass of the plain loop's data path per iteration: read one split (the train split by default)
    from the upstream file, then the shuffled full batches of ``legacy.cycle_batches``, as tensors."""

    run: Run
    legacy_dir: Path
    batch_size: int
    split: str = "train"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch

        from tf2lightning.families.d3 import upstream
        from tf2lightning.families.d3.datasets import dataset_kind
        from tf2lightning.families.d3.legacy import cycle_batches

        seqs, activity = upstream.read_split(dataset_kind(self.run), self.legacy_dir, self.split)
        batches = cycle_batches(len(seqs), self.batch_size, self.run.seed)
        for index in itertools.islice(batches, len(seqs) // self.batch_size):
            yield {"seq": torch.from_numpy(seqs[index]), "activity": torch.from_numpy(activity[index])}


def legacy_batches(run: Run, legacy_dir: Path, batch_size: int) -> UpstreamBatches:
    """The plain loop's reader on the upstream dataset file."""
    return UpstreamBatches(run, Path(legacy_dir), batch_size)


def legacy_reads(run: Run, legacy_dir: Path, batch_size: int) -> list[UpstreamBatches]:
    """The plain loop's reader over every split of the upstream file (what the converter converts)."""
    from tf2lightning.families.d3.upstream import SPLITS

    return [UpstreamBatches(run, Path(legacy_dir), batch_size, split) for split in SPLITS]
