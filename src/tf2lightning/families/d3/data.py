"""D3 data: the upstream dataset file -> one HDF5 table, and the LightningDataModule.

HDF5 layout (one row per sequence, one chunk per row): ``seq`` uint8 ``(L,)`` (A,C,G,T -> 0..3)
Bitshuffle-LZ4, ``activity`` float32 (upstream's label: ``(n_act,)``, or promoter's ``(L, 1)`` track),
``split`` uint8; attributes ``splits``, ``length``, ``activities``, ``kind``, ``source``, ``n_unknown``
(``N`` positions read as ``A``, upstream's argmax) and ``missing_splits`` (a file without a test split is
accepted: upstream trains on train and valid only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tf2lightning.core.hdf5_store import Field, H5Writer
from tf2lightning.families.d3 import upstream
from tf2lightning.families.d3.datasets import dataset_kind, label_shape
from tf2lightning.run import Run

log = logging.getLogger(__name__)
REQUIRED_SPLITS = ("train", "valid")

if TYPE_CHECKING:
    from tf2lightning.families.d3.datamodule import SequenceDataModule


def convert(run: Run, legacy_dir: Path, out_h5: Path) -> None:
    """Write every split of the upstream file into ``out_h5`` (nothing is left if an array is bad)."""
    kind = dataset_kind(run)
    fields = {
        "seq": Field(np.uint8, (kind.length,), "bitshuffle-lz4"),
        "activity": Field(np.float32, label_shape(kind)),
        "split": Field(np.uint8),
    }
    attrs = {
        "splits": list(upstream.SPLITS),
        "length": kind.length,
        "activities": list(kind.activities),
        "kind": kind.layout,
        "source": str(legacy_dir),
    }
    present = [s for s in upstream.SPLITS if s in REQUIRED_SPLITS or upstream.has_split(kind, legacy_dir, s)]
    n_unknown = 0
    parts = []
    for split_id, split in enumerate(upstream.SPLITS):
        if split in present:
            seqs, activity, unknown = upstream.read_split_counted(kind, legacy_dir, split)
            n_unknown += unknown
            parts.append({"seq": seqs, "activity": activity, "split": np.full(len(seqs), split_id, np.uint8)})
    missing = [s for s in upstream.SPLITS if s not in present]
    log.info(
        "%s: %d N positions read as A (upstream's argmax); missing splits: %s",
        legacy_dir,
        n_unknown,
        missing or "none",
    )
    attrs.update(n_unknown=n_unknown, missing_splits=missing)
    with H5Writer(out_h5, fields, attrs) as out:
        for part in parts:
            out.append(part)


def make_datamodule(run: Run, h5: Path, **extras: Path) -> SequenceDataModule:
    """The LightningDataModule (torch side; imported here so ``convert`` needs no torch)."""
    from tf2lightning.families.d3.datamodule import SequenceDataModule

    del extras
    return SequenceDataModule(
        h5,
        batch_size=int(run.train.get("batch_size", 32)),
        num_workers=int(run.train.get("num_workers", 0)),
        seed=run.seed,
    )
