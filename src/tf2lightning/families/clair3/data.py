"""Clair3 data: a folder of upstream bins (see :mod:`bins`) -> one HDF5 file, and the DataModule factory.

HDF5 layout: one group per network's data, ``pileup/`` and ``full_alignment/`` (their sites differ, as
upstream's bins do), each with one row per site: ``position_matrix`` as the bins store it (pileup int32
counts, full alignment int8), ``Blosc(lz4, shuffle)`` in chunks of ``CHUNK_ROWS`` rows (Clair3's larger
chunks make shuffled reads 3x-27x slower); ``label`` as stored (90 columns); ``split`` uint8 (index into the
``splits`` attribute); ``file`` (the name of the bin each row came from, rows in file order), ``position``
and ``alt_info`` fixed-width bytes; group attribute ``n_examples``. File attributes: ``platform``,
``depth``, ``heads``, ``splits``, ``split`` (the split config), ``source``.

Sharded (``core.shards``): one shard per bin file of each network (``pileup__bin_hg002_60_chr1``), its rows
in its network's group; ``data.h5`` gathers them group by group into the same layout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.hdf5_store import Field, H5Writer
from tf2lightning.core.shards import Shard, shard_name
from tf2lightning.errors import FormatError
from tf2lightning.families.clair3.bin_format import check_bin, read_rows
from tf2lightning.families.clair3.bins import KINDS, SPLITS, bin_files, file_split, split_codes, split_config
from tf2lightning.families.clair3.labels import HEADS, LABEL_WIDTH, label_classes
from tf2lightning.families.clair3.platform import platform_of, tensor_field
from tf2lightning.run import Run

if TYPE_CHECKING:
    from tf2lightning.families.clair3.datamodule import Clair3DataModule

CHUNK_ROWS = 16
CODEC = "blosc-lz4"  # lz4hc (as the bins) made the converter slower than Clair3's own reader
ARRAY_FIELDS = ("position_matrix", "label", "position", "alt_info")
BLOCK_ROWS = 4096


def field_key(field: str, name: str) -> str:
    """The dataset path of one array of a network's group, e.g. ``pileup/label``."""
    return f"{field}/{name}"


def _file_attrs(run: Run, legacy_dir: Path) -> dict:
    platform = platform_of(run)
    return {
        "platform": platform.name,
        "depth": platform.depth,
        "heads": list(HEADS),
        "splits": list(SPLITS),
        "split": split_config(run),
        "source": str(legacy_dir),
    }


def _fields(run: Run, kind: str, files: list[Path]) -> tuple[dict[str, Field], list[int]]:
    """The group's fields for the rows of ``files`` (checked bins of one network) and each file's sites."""
    shape = platform_of(run).input_shape("P" if kind == "pileup" else "F")
    counts, dtypes, widths = [], set(), {"position": 1, "alt_info": 1}
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
        where = files[0].parent
        raise FormatError(f"{where}: bins with different dtypes (position_matrix, label): {sorted(dtypes)}")
    (matrix_dtype, label_dtype) = next(iter(dtypes))
    fields = {
        "position_matrix": Field(np.dtype(matrix_dtype), shape, CODEC, CHUNK_ROWS),
        "label": Field(np.dtype(label_dtype), (LABEL_WIDTH,), CODEC, CHUNK_ROWS),
        "split": Field(np.uint8, (), None, CHUNK_ROWS),
        "file": Field(f"S{max(len(p.name.encode()) for p in files)}", (), CODEC, CHUNK_ROWS),
        "position": Field(f"S{widths['position']}", (), CODEC, CHUNK_ROWS),
        "alt_info": Field(f"S{widths['alt_info']}", (), CODEC, CHUNK_ROWS),
    }
    return {field_key(kind, name): field for name, field in fields.items()}, counts


def _write(run: Run, legacy_dir: Path, kind: str, files: list[Path], out: Path, block_rows: int) -> None:
    """The rows of one network's ``files`` into the group ``kind`` of ``out`` (written atomically)."""
    fields, counts = _fields(run, kind, files)
    with H5Writer(out, fields, _file_attrs(run, legacy_dir)) as writer:
        for path, n in zip(files, counts, strict=True):
            code = split_codes(run, path, n)
            with h5py.File(path, "r") as h5:
                for start in range(0, n, block_rows):
                    rows = slice(start, min(start + block_rows, n))
                    block = {name: read_rows(h5, name, rows) for name in ARRAY_FIELDS}
                    label_classes(block["label"], f"{path} (rows from {start})")
                    block["split"] = code[rows]
                    block["file"] = np.full(rows.stop - rows.start, path.name.encode())
                    writer.append({field_key(kind, name): values for name, values in block.items()})


def shards(run: Run, legacy_dir: Path) -> list[Shard]:
    """One shard per bin file of each network, pileup first (split ``mixed`` under ``by: fraction``)."""
    return [
        Shard(shard_name(legacy_dir, path), file_split(run, path) or "mixed", (path,))
        for kind in KINDS
        for path in bin_files(legacy_dir, kind)
    ]


def convert_shard(
    run: Run, legacy_dir: Path, shard: Shard, out_h5: Path, block_rows: int = BLOCK_ROWS
) -> None:
    """The rows of one shard's bin file in its network's group (for ``core.shards.gather``)."""
    (path,) = shard.paths
    kind = path.parent.name
    if kind not in KINDS or path.parent.parent.resolve() != Path(legacy_dir).resolve():
        raise FormatError(f"{path}: not a bin of {legacy_dir}/pileup or {legacy_dir}/full_alignment")
    Path(out_h5).parent.mkdir(parents=True, exist_ok=True)
    _write(run, Path(legacy_dir), kind, [path], Path(out_h5), block_rows)


def convert(run: Run, legacy_dir: Path, out_h5: Path, block_rows: int = BLOCK_ROWS) -> None:
    """Stream both networks' bins into ``out_h5`` in one go (nothing is left behind if a file is bad)."""
    legacy_dir, out_h5 = Path(legacy_dir), Path(out_h5)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_h5.parent, prefix=".clair3-") as scratch:
        parts = [Path(scratch) / f"{kind}.h5" for kind in KINDS]
        for kind, part in zip(KINDS, parts, strict=True):
            _write(run, legacy_dir, kind, bin_files(legacy_dir, kind), part, block_rows)
        with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as out:
            for kind, part in zip(KINDS, parts, strict=True):
                with h5py.File(part, "r") as h5:
                    h5.copy(h5[kind], out, kind)
                    out[kind].attrs["n_examples"] = h5.attrs["n_examples"]
                    for key, value in h5.attrs.items():
                        if key != "n_examples":
                            out.attrs[key] = value


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
