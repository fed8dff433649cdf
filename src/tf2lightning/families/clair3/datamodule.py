"""The Clair3 LightningDataModule: shuffled per-site reads of one tensor field and the labels.

Works on one network's group of ``data.h5`` (``<field>/position_matrix``, ``<field>/label``,
``<field>/split``) and, for evaluation or calling, on a Clair3 bin directly (:class:`BinSites`:
``position_matrix`` and ``label`` read lazily, one site per access). A batch's labels
are decoded and checked in one call (``__getitems__``, which the DataLoader uses for map-style datasets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from tf2lightning.core.datamodule import SplitDataModule
from tf2lightning.core.hdf5_store import H5Examples, split_indices
from tf2lightning.errors import FormatError
from tf2lightning.families.clair3.labels import label_classes


class Sites(Dataset):
    """``{"x": tensor as stored, "y": int64 (4,) class per head}`` per site of a network's group of
    ``data.h5`` (``group``; ``""`` for a bin file's root)."""

    def __init__(self, path: Path, group: str) -> None:
        prefix = f"{group}/" if group else ""
        self.field, self.label = f"{prefix}position_matrix", f"{prefix}label"
        self.examples = H5Examples(path, (self.field, self.label))
        self.where = str(path)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """The sites of one batch (the DataLoader fetches a batch with one call): the labels of all of
        them are decoded and checked at once."""
        rows = [self.examples[i] for i in indices]
        labels = np.stack([row[self.label] for row in rows])
        try:
            classes = torch.from_numpy(label_classes(labels, self.where))
        except FormatError:
            for index, label in zip(indices, labels, strict=True):  # the error names the site
                label_classes(label[None], f"{self.where}: site {index}")
            raise
        return [
            {"x": torch.from_numpy(np.asarray(row[self.field])), "y": y}
            for row, y in zip(rows, classes, strict=True)
        ]


class BinSites(Sites):
    """The sites of a Clair3 bin (its arrays are at the file's root)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "")


class Clair3DataModule(SplitDataModule):
    """Train/val/test loaders over ``data.h5``; the file is opened lazily in each worker."""

    def __init__(
        self, h5: Path, field: str, batch_size: int = 64, num_workers: int = 0, seed: int = 0
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.h5, self.field = Path(h5), field

    def make_datasets(self) -> dict[str, Subset]:
        sites = Sites(self.h5, self.field)
        splits = split_indices(self.h5, f"{self.field}/split")
        return {name: Subset(sites, idx.tolist()) for name, idx in splits.items()}
