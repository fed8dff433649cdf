"""Clair3 data: a folder of upstream bins (see :mod:`bins`) -> one HDF5 file, and the DataModule factory.

HDF5 layout: one group per network's data, ``pileup/`` and ``full_alignment/`` (their sites differ, as
upstream's bins do), each with one row per site: ``position_matrix`` as the bins store it (pileup int32
counts, full alignment int8), ``Blosc(lz4, shuffle)`` in chunks of ``CHUNK_ROWS`` rows (Clair3's larger
chunks make shuffled reads 3x-27x slower); ``label`` as stored (90 columns); ``split`` uint8 (index into the
``splits`` attribute); ``file`` uint16 (index into the group's ``files`` attribute: the bin each row came
from, rows in file order); ``position`` and ``alt_info`` fixed-width bytes. File attributes: ``platform``,
``depth``, ``heads``, ``splits``, ``split`` (the split config), ``source``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.hdf5_store import FORMAT_VERSION, Field, H5Writer
from tf2lightning.errors import FormatError
from tf2lightning.families.clair3.bin_format import check_bin, read_rows
from tf2lightning.families.clair3.bins import KINDS, SPLITS, bin_files, split_codes, split_config
from tf2lightning.families.clair3.labels import HEADS, LABEL_WIDTH, label_classes
from tf2lightning.families.clair3.platform import platform_of, tensor_field
from tf2lightning.run import Run

if TYPE_CHECKING:
    from tf2lightning.families.clair3.datamodule import Clair3DataModule

CHUNK_ROWS = 16
CODEC = "blosc-lz4"  # lz4hc (as the bins) made the converter slower than Clair3's own reader
ARRAY_FIELDS = ("position_matrix", "label", "position", "alt_info")


def field_key(field: str, name: str) -> str:
    """The dataset path of one array of a network's group, e.g. ``pileup/label``."""
    return f"{field}/{name}"


def _write_kind(run: Run, legacy_dir: Path, kind: str, out: Path, block_rows: int) -> None:
    """One network's bins -> a flat HDF5 file (copied into its group by :func:`convert`)."""
    shape = platform_of(run).input_shape("P" if kind == "pileup" else "F")
    files, counts, dtypes, widths = bin_files(legacy_dir, kind), [], set(), {"position": 1, "alt_info": 1}
    for path in files:
        try:
            with h5py.File(path, "r") as h5:
                counts.append(check_bin(h5, str(path), shape))
                dtypes.add((h5["position_matrix"].dtype.str, h5["label"].dtype.str))
                for name in widths:
                    widths[name] = max(widths[name], h5[name].dtype.itemsize)
        except OSError as error:
            raise FormatError(f"{path}: not a readable Clair3 bin (HDF5) file: {error}") from None
    if len(dtypes) != 1:
        where = Path(legacy_dir) / kind
        raise FormatError(f"{where}: bins with different dtypes (position_matrix, label): {sorted(dtypes)}")
    (matrix_dtype, label_dtype) = next(iter(dtypes))
    fields = {
        "position_matrix": Field(np.dtype(matrix_dtype), shape, CODEC, CHUNK_ROWS),
        "label": Field(np.dtype(label_dtype), (LABEL_WIDTH,), CODEC, CHUNK_ROWS),
        "split": Field(np.uint8, (), None, CHUNK_ROWS),
        "file": Field(np.uint16, (), None, CHUNK_ROWS),
        "position": Field(f"S{widths['position']}", (), CODEC, CHUNK_ROWS),
        "alt_info": Field(f"S{widths['alt_info']}", (), CODEC, CHUNK_ROWS),
    }
    codes = split_codes(run, files, counts)
    with H5Writer(out, fields, {"files": [p.name for p in files]}) as writer:
        for index, (path, n, code) in enumerate(zip(files, counts, codes, strict=True)):
            with h5py.File(path, "r") as h5:
                for start in range(0, n, block_rows):
                    rows = slice(start, min(start + block_rows, n))
                    block = {name: read_rows(h5, name, rows) for name in ARRAY_FIELDS}
                    label_classes(block["label"], f"{path} (rows from {start})")
                    block["split"] = code[rows]
                    block["file"] = np.full(rows.stop - rows.start, index, dtype=np.uint16)
                    writer.append(block)


def convert(run: Run, legacy_dir: Path, out_h5: Path, block_rows: int = 4096) -> None:
    """Stream both networks' bins into ``out_h5`` (nothing is left behind if a file is bad)."""
    platform = platform_of(run)
    attrs = {
        "platform": platform.name,
        "depth": platform.depth,
        "heads": list(HEADS),
        "splits": list(SPLITS),
        "split": split_config(run),
        "source": str(legacy_dir),
        "format_version": FORMAT_VERSION,
    }
    out_h5 = Path(out_h5)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_h5.parent, prefix=".clair3-") as scratch:
        for kind in KINDS:
            _write_kind(run, Path(legacy_dir), kind, Path(scratch) / f"{kind}.h5", block_rows)
        with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as out:
            for kind in KINDS:
                group = out.create_group(kind)
                with h5py.File(Path(scratch) / f"{kind}.h5", "r") as part:
                    for name in part:
                        part.copy(part[name], group, name)
                    group.attrs["files"] = part.attrs["files"]
                    group.attrs["n_examples"] = part.attrs["n_examples"]
            for key, value in attrs.items():
                out.attrs[key] = json.dumps(value) if isinstance(value, list | dict) else value


def make_datamodule(run: Run, h5: Path) -> Clair3DataModule:
    """The LightningDataModule over ``data.h5`` for the run's network (torch side)."""
    from tf2lightning.families.clair3.datamodule import Clair3DataModule

    return Clair3DataModule(
        h5,
        tensor_field(run),
        batch_size=int(run.train.get("batch_size", 64)),
        num_workers=int(run.train.get("num_workers", 0)),
        seed=run.seed,
    )
