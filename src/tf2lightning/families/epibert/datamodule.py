"""The EpiBERT LightningDataModule: per-example HDF5 reads, the pretraining augmentation in the workers.

Training examples get fresh draws every time (a numpy generator per worker process, seeded from torch's
per-worker seed); validation and test examples get fixed draws (``default_rng((seed, index))``), so
evaluation always sees the same masks.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from tf2lightning.core.datamodule import SplitDataModule
from tf2lightning.core.hdf5_store import H5Examples, split_indices
from tf2lightning.errors import FormatError
from tf2lightning.families.epibert.augment import augment
from tf2lightning.families.epibert.data import EXAMPLE_KEYS
from tf2lightning.families.epibert.draws import draw
from tf2lightning.families.epibert.geometry import Geometry


class AugmentedExamples(Dataset):
    """Rows ``indices`` of ``data.h5``, augmented; ``fixed_seed`` makes each row's draws fixed; ``rna``
    adds the expression target (fine-tuning)."""

    def __init__(
        self,
        h5: Path,
        indices: np.ndarray,
        geo: Geometry,
        rate: float,
        fixed_seed: int | None,
        rna: bool = False,
    ) -> None:
        if rna:
            require_rna(h5)
        self.examples = H5Examples(h5, (*EXAMPLE_KEYS, "rna") if rna else EXAMPLE_KEYS)
        self.indices = np.asarray(indices)
        self.geo, self.rate, self.fixed_seed = geo, rate, fixed_seed
        self._rng: np.random.Generator | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _generator(self, item: int) -> np.random.Generator:
        if self.fixed_seed is not None:
            return np.random.default_rng((self.fixed_seed, int(self.indices[item])))
        if self._rng is None or self._pid != os.getpid():
            self._rng, self._pid = np.random.default_rng(torch.initial_seed()), os.getpid()
        return self._rng

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        example = self.examples[int(self.indices[item])]
        drawn = draw(self._generator(item), self.geo, training=self.fixed_seed is None)
        return augment(example, drawn, self.geo, self.rate)


def require_rna(h5: Path) -> None:
    """Fine-tuning needs the expression target: a ``data.h5`` without ``rna`` is an error naming it."""
    with h5py.File(h5, "r") as f:
        if "rna" not in f:
            raise FormatError(
                f"{h5}: no 'rna' dataset; fine-tuning needs TFRecords with the expression feature 'rna' "
                "(float16, (n_tokens, 1))"
            )


class EpiBERTDataModule(SplitDataModule):
    """Train/val/test loaders over ``data.h5``; batches of ``sequence`` codes, ``atac``, ``mask``,
    ``target`` and ``motif`` (and ``rna`` with ``rna=True``); the one-hot is made in the LightningModule,
    on the device."""

    def __init__(
        self,
        h5: Path,
        geo: Geometry,
        rate: float,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        rna: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.h5, self.geo, self.rate, self.rna = Path(h5), geo, rate, rna

    def make_datasets(self) -> dict[str, AugmentedExamples]:
        return {
            split: AugmentedExamples(
                self.h5, idx, self.geo, self.rate, None if split == "train" else self.seed, self.rna
            )
            for split, idx in split_indices(self.h5).items()
        }
