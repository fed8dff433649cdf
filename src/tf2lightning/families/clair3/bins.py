"""A folder of Clair3 training bins as upstream writes them, and its train/val/test split (numpy, h5py only).

Upstream's Tensor2Bin/MergeBin write one PyTables file per sample, coverage and chromosome, named
``bin_<sample>_<coverage>_<chrom>`` (no extension), pileup and full-alignment bins in separate runs (so
in separate folders, with different sites) and no split (its Train.py splits at run time). ``legacy_data``
is a folder holding ``pileup/`` and ``full_alignment/`` folders of such files; the split is the dataset's
``split`` config:

* ``by: chromosome`` (the default): the files whose chromosome (the name after the last ``_``) or whole
  file name is listed in ``val`` or ``test`` are that split, every other file is ``train``;
* ``by: fraction``: ``val_fraction`` and ``test_fraction`` of each bin file's sites (rounded), drawn with
  ``seed`` (default: the workflow seed) and the file's name, the rest ``train``.

Either way a file's split depends on that file alone, so its rows convert alone (one shard per file).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.run import Run

SPLITS = ("train", "val", "test")
KINDS = ("pileup", "full_alignment")
DEFAULT_SPLIT = {"by": "chromosome", "val": ["chr20"], "test": ["chr21"]}


@dataclass(frozen=True)
class BinRows:
    """The rows of one split in one bin file."""

    path: Path
    rows: np.ndarray  # increasing row indices


def bin_files(legacy_dir: str | Path, kind: str) -> list[Path]:
    """The bin files of one network's folder, sorted by name (hidden files skipped)."""
    folder = Path(legacy_dir) / kind
    if not folder.is_dir():
        raise FormatError(f"{folder}: no such folder; a Clair3 bin folder holds pileup/ and full_alignment/")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FormatError(f"{folder}: no bin files")
    return files


def chromosome_of(path: Path) -> str:
    """``chr20`` for ``bin_hg002_60_chr20`` (the name after the last ``_``)."""
    return path.name.rsplit("_", 1)[-1]


def split_config(run: Run) -> dict:
    """The dataset's ``split`` section over the defaults, checked."""
    cfg = {**DEFAULT_SPLIT, **dict(run.dataset.get("split") or {})}
    where = f"config key families.{run.family}.datasets.{run.dataset_name}.split"
    if cfg["by"] not in ("chromosome", "fraction"):
        raise ConfigError(f"{where}.by: {cfg['by']!r} is not 'chromosome' or 'fraction'")
    if cfg["by"] == "chromosome" and set(cfg["val"]) & set(cfg["test"]):
        raise ConfigError(f"{where}: {sorted(set(cfg['val']) & set(cfg['test']))} is in both val and test")
    if cfg["by"] == "fraction":
        val, test = float(cfg.get("val_fraction", 0.1)), float(cfg.get("test_fraction", 0.1))
        if val < 0 or test < 0 or val + test >= 1:
            raise ConfigError(f"{where}: val_fraction {val} and test_fraction {test} leave no training sites")
    return cfg


def file_split(run: Run, path: Path) -> str | None:
    """The split of all of a file's rows under ``by: chromosome``; None under ``by: fraction``."""
    cfg = split_config(run)
    if cfg["by"] != "chromosome":
        return None
    names = {path.name, chromosome_of(path)}
    return "test" if names & set(cfg["test"]) else "val" if names & set(cfg["val"]) else "train"


def split_codes(run: Run, path: Path, n: int) -> np.ndarray:
    """The split index (into ``SPLITS``) of each of the ``n`` rows of the bin file ``path``."""
    split = file_split(run, path)
    if split is not None:
        return np.full(n, SPLITS.index(split), dtype=np.uint8)
    cfg = split_config(run)
    seed = (int(cfg.get("seed", run.seed)), zlib.crc32(path.name.encode()))
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(float(cfg.get("test_fraction", 0.1)) * n)
    n_val = round(float(cfg.get("val_fraction", 0.1)) * n)
    codes = np.zeros(n, dtype=np.uint8)
    codes[order[:n_test]] = 2
    codes[order[n_test : n_test + n_val]] = 1
    return codes


def split_rows(run: Run, legacy_dir: str | Path, kind: str, split: str) -> list[BinRows]:
    """The rows of ``split`` in each bin file of ``kind`` (files without any are left out)."""
    import h5py

    files = bin_files(legacy_dir, kind)
    counts = []
    for path in files:
        try:
            with h5py.File(path, "r") as h5:
                counts.append(int(h5["position_matrix"].shape[0]) if "position_matrix" in h5 else 0)
        except OSError as error:
            raise FormatError(f"{path}: not a readable Clair3 bin (HDF5) file: {error}") from None
    code = SPLITS.index(split)
    parts = [
        BinRows(path, np.flatnonzero(split_codes(run, path, n) == code))
        for path, n in zip(files, counts, strict=True)
    ]
    return [part for part in parts if part.rows.size]
