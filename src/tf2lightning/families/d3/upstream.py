"""The upstream D3 dataset files, written and read with h5py/numpy only.

=========  =====================  ==========================================================================
layout     file                   contents (split names ``train``, ``valid``, ``test``)
=========  =====================  ==========================================================================
deepstarr  ``DeepSTARR_data.h5``  ``X_<split>`` float32 one-hot ``(N, 4, L)``; ``Y_<split>`` ``(N, 2)``
mpra       ``mpra_data.h5``       ``x_<split>`` float32 one-hot ``(N, L, 4)``; ``y_<split>`` ``(N, 3)``
promoter   ``promoter_items.npz`` ``<split>`` float32 ``(N, L, 6)``: one-hot + two signal tracks (CAGE +, -),
                                  the items of upstream's ``PromoterDataset`` (5 channels are read too)
=========  =====================  ==========================================================================

Readers return uint8 codes ``(N, L)`` (upstream's argmax: an ``N``, an all-zero one-hot column, reads as
``A``; :func:`read_split_counted` also counts them) and upstream's labels: activities ``(N, n_act)``, or for
promoter the ``(N, L, 1)`` CAGE + track (``item[:, :, 4:5]``). Errors name the file and the array.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError
from tf2lightning.families.d3.datasets import DatasetKind

SPLITS = ("train", "valid", "test")
PROMOTER_ITEMS = {"train": "train", "valid": "test", "test": "test"}
"""Promoter split -> items array: upstream's ``data.py`` validates on ``PromoterDataset(split='test')``."""


def one_hot(codes: np.ndarray) -> np.ndarray:
    """uint8 codes ``(N, L)`` -> float32 one-hot ``(N, L, 4)``."""
    return np.eye(4, dtype=np.float32)[codes]


def write_split_files(
    kind: DatasetKind, out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]
) -> Path:
    """Write ``{split: (codes, activity, signal or None)}`` in ``kind``'s upstream layout; return the file."""
    path = Path(out_dir) / kind.file
    with atomic_path(path) as tmp:
        if kind.layout == "promoter":
            arrays = {
                split: np.concatenate(
                    [one_hot(codes), signal[..., None], np.zeros_like(signal)[..., None]], -1
                )
                for split, (codes, _, signal) in splits.items()
            }
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            return path
        x, y = ("X", "Y") if kind.layout == "deepstarr" else ("x", "y")
        with h5py.File(tmp, "w") as f:
            for split, (codes, activity, _) in splits.items():
                hot = one_hot(codes)
                f.create_dataset(f"{x}_{split}", data=hot.transpose(0, 2, 1) if x == "X" else hot)
                f.create_dataset(f"{y}_{split}", data=activity.astype(np.float32))
    return path


def _codes(path: Path, name: str, hot: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """One-hot ``(N, L, 4)`` -> (codes, number of ``N`` positions), checking the shape and that each position
    is one nucleotide or none (an ``N``, read as ``A`` = 0 like upstream's argmax)."""
    if hot.ndim != 3 or hot.shape[1:] != (length, 4):
        raise FormatError(f"{path}: {name}: expected one-hot (N, {length}, 4), found shape {hot.shape}")
    sums = hot.sum(-1)
    bad = np.argwhere((sums != 1) & (sums != 0))
    if len(bad):
        row, pos = bad[0]
        raise FormatError(
            f"{path}: {name}: row {row} position {pos} is not one-hot (sums to {sums[row, pos]})"
        )
    return hot.argmax(-1).astype(np.uint8), int((sums == 0).sum())


def read_split(kind: DatasetKind, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(N, L)`` uint8 and labels float32 of one split (see the module's docstring)."""
    codes, labels, _ = read_split_counted(kind, data_dir, split)
    return codes, labels


def has_split(kind: DatasetKind, data_dir: Path, split: str) -> bool:
    path = Path(data_dir) / kind.file
    if kind.layout == "promoter":
        with np.load(path) as archive:
            return PROMOTER_ITEMS[split] in archive.files
    x = "X" if kind.layout == "deepstarr" else "x"
    with h5py.File(path, "r") as f:
        return f"{x}_{split}" in f


def read_split_counted(kind: DatasetKind, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`read_split` plus the number of ``N`` positions read as ``A``."""
    path = Path(data_dir) / kind.file
    if not path.exists():
        raise FormatError(f"{path}: missing; the {kind.layout} dataset needs this file")
    n_act = len(kind.activities)
    if kind.layout == "promoter":
        with np.load(path) as archive:
            name = PROMOTER_ITEMS[split]
            if name not in archive:
                raise FormatError(f"{path}: no array {name!r}; found {sorted(archive.files)}")
            data = archive[name]
        if data.ndim != 3 or data.shape[2] not in (5, 6):
            raise FormatError(f"{path}: {split}: expected (N, {kind.length}, 6), found shape {data.shape}")
        codes, n_unknown = _codes(path, split, data[..., :4], kind.length)
        return codes, data[..., 4:5].astype(np.float32), n_unknown
    x, y = ("X", "Y") if kind.layout == "deepstarr" else ("x", "y")
    with h5py.File(path, "r") as f:
        for name in (f"{x}_{split}", f"{y}_{split}"):
            if name not in f:
                raise FormatError(f"{path}: no dataset {name!r}; found {sorted(f.keys())}")
        hot = np.asarray(f[f"{x}_{split}"], dtype=np.float32)
        activity = np.asarray(f[f"{y}_{split}"], dtype=np.float32)
    hot = hot.transpose(0, 2, 1) if x == "X" and hot.ndim == 3 else hot
    codes, n_unknown = _codes(path, f"{x}_{split}", hot, kind.length)
    if activity.shape != (len(codes), n_act):
        expected = (len(codes), n_act)
        raise FormatError(f"{path}: {y}_{split}: expected shape {expected}, found {activity.shape}")
    return codes, activity, n_unknown
