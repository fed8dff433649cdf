"""Clair3 data: the per-split ``.bin`` files -> one HDF5 table, and the LightningDataModule factory.

HDF5 layout (one row per candidate site): ``pileup`` int8 (33, 18) and ``full_alignment`` int8
(depth, 33, 8), both ``Blosc(lz4hc, shuffle)`` in chunks of ``CHUNK_ROWS`` rows (Clair3's 500-row chunks
make shuffled reads 3x-27x slower); ``label`` int8 (90); ``split`` uint8 (index into the ``splits``
attribute); ``position`` and ``alt_info`` fixed-width bytes. Attributes: ``platform``, ``depth``, ``heads``,
``splits``, ``source``. The pileup and full-alignment bins of a split must list the same sites.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from tf2lightning.core.hdf5_store import Field, H5Writer
from tf2lightning.core.shards import Shard
from tf2lightning.errors import FormatError
from tf2lightning.families.clair3.bin_format import bin_path, check_bin
from tf2lightning.families.clair3.labels import HEADS, LABEL_WIDTH, label_classes
from tf2lightning.families.clair3.platform import TENSOR_FIELD, platform_of, tensor_field
from tf2lightning.run import Run

if TYPE_CHECKING:
    from tf2lightning.families.clair3.datamodule import Clair3DataModule

SPLITS = ("train", "val", "test")
CHUNK_ROWS = 16
CODEC = "blosc-lz4hc"


@contextlib.contextmanager
def open_split(run: Run, legacy_dir: Path, split: str) -> Iterator[tuple[dict[str, h5py.Dataset], int]]:
    """The pileup and full-alignment ``.bin`` of one split, checked: ``{field: dataset}`` and the site
    count. Labels and positions are read from the pileup bin and must equal the full-alignment bin's."""
    platform = platform_of(run)
    shapes = {"pileup": platform.pileup_shape, "full_alignment": platform.full_alignment_shape}
    with contextlib.ExitStack() as stack:
        files, counts = {}, {}
        for field in TENSOR_FIELD.values():
            path = bin_path(legacy_dir, split, field)
            try:
                files[field] = stack.enter_context(h5py.File(path, "r"))
            except OSError as error:
                raise FormatError(f"{path}: not a readable Clair3 .bin (HDF5) file: {error}") from None
            counts[field] = check_bin(files[field], str(path), shapes[field])
        if counts["pileup"] != counts["full_alignment"]:
            raise FormatError(
                f"{bin_path(legacy_dir, split, 'full_alignment')}: {counts['full_alignment']} sites, "
                f"but the pileup .bin has {counts['pileup']}"
            )
        pileup = files["pileup"]
        arrays = {k: pileup[k] for k in ("label", "position", "alt_info")}
        arrays.update({field: files[field]["position_matrix"] for field in TENSOR_FIELD.values()})
        arrays["_fa_label"], arrays["_fa_position"] = (
            files["full_alignment"]["label"],
            files["full_alignment"]["position"],
        )
        yield arrays, counts["pileup"]


def split_stems(legacy_dir: Path, split: str) -> list[str]:
    """The ``.bin`` pairs of one split by stem: ``<split>.{pileup,full_alignment}.bin`` and/or parts
    ``<split>-*.{pileup,full_alignment}.bin`` (the missing-file error comes from :func:`open_split`)."""
    suffix = ".pileup.bin"
    parts = [p.name[: -len(suffix)] for p in sorted(Path(legacy_dir).glob(f"{split}-*{suffix}"))]
    whole = bin_path(legacy_dir, split, "pileup").exists() or not parts
    return [split] * whole + parts


def shards(run: Run, legacy_dir: Path) -> list[Shard]:
    """One shard per pileup/full-alignment ``.bin`` pair, splits in order."""
    return [
        Shard(stem, split, tuple(bin_path(legacy_dir, stem, field) for field in TENSOR_FIELD.values()))
        for split in SPLITS
        for stem in split_stems(legacy_dir, split)
    ]


def convert(run: Run, legacy_dir: Path, out_h5: Path, block_rows: int = 4096) -> None:
    """Stream every split's sites into ``out_h5`` in blocks (nothing is left behind if a file is bad)."""
    _write(run, Path(legacy_dir), shards(run, Path(legacy_dir)), Path(out_h5), block_rows)


def convert_shard(run: Run, legacy_dir: Path, shard: Shard, out_h5: Path) -> None:
    """The sites of one shard's ``.bin`` pair, in the layout of :func:`convert` (for ``core.shards``)."""
    _write(run, Path(legacy_dir), [shard], Path(out_h5))


def _write(run: Run, legacy_dir: Path, parts: list[Shard], out_h5: Path, block_rows: int = 4096) -> None:
    platform = platform_of(run)
    with contextlib.ExitStack() as stack:
        splits = [stack.enter_context(open_split(run, legacy_dir, shard.name)) for shard in parts]
        widths = {k: max(arrays[k].dtype.itemsize for arrays, _ in splits) for k in ("position", "alt_info")}
        fields = {
            "pileup": Field(np.int8, platform.pileup_shape, CODEC, CHUNK_ROWS),
            "full_alignment": Field(np.int8, platform.full_alignment_shape, CODEC, CHUNK_ROWS),
            "label": Field(np.int8, (LABEL_WIDTH,), CODEC, CHUNK_ROWS),
            "split": Field(np.uint8, (), None, CHUNK_ROWS),
            "position": Field(f"S{widths['position']}", (), None, CHUNK_ROWS),
            "alt_info": Field(f"S{widths['alt_info']}", (), None, CHUNK_ROWS),
        }
        attrs = {
            "platform": platform.name,
            "depth": platform.depth,
            "heads": list(HEADS),
            "splits": list(SPLITS),
            "source": str(legacy_dir),
        }
        with H5Writer(out_h5, fields, attrs) as out:
            for shard, (arrays, n) in zip(parts, splits, strict=True):
                stem, split_id = shard.name, SPLITS.index(shard.split)
                where = bin_path(legacy_dir, stem, "full_alignment")
                for start in range(0, n, block_rows):
                    block = {k: v[start : start + block_rows] for k, v in arrays.items()}
                    for name in ("label", "position"):
                        if not np.array_equal(block[name], block.pop(f"_fa_{name}")):
                            raise FormatError(
                                f"{where}: array {name!r} differs from the pileup .bin's near row {start}"
                            )
                    label_classes(
                        block["label"], f"{bin_path(legacy_dir, stem, 'pileup')} (rows from {start})"
                    )
                    block["label"] = block["label"].astype(np.int8)
                    block["split"] = np.full(len(block["label"]), split_id, dtype=np.uint8)
                    out.append(block)


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
