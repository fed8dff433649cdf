"""EpiBERT data: the upstream TFRecords (one ZLIB file per split and cell type) -> one HDF5 file.

HDF5 layout (one row per example, one chunk per row): ``sequence`` uint8 codes A,C,G,T,N -> 0..4
(``stored_length``) and ``atac`` float16 (``atac_length``), both Bitshuffle-LZ4; ``peaks`` and
``peaks_center`` uint8 (``n_tokens``); ``motif_activity`` float16 (``n_motifs``); ``interval`` string;
``split`` uint8 (index into the ``splits`` attribute); and ``rna`` float16 (``n_tokens``, Bitshuffle-LZ4),
the fine-tuning target, when the records have it (the first record decides; then every record must).
Dtypes and shapes are taken from the serialized tensors and checked against the configured geometry
(upstream stores float16 where its reader says float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2lightning.core.hdf5_store import Field, H5Writer
from tf2lightning.core.shards import Shard, shard_name
from tf2lightning.core.tfrecord import iter_records, parse_example, parse_tensor
from tf2lightning.errors import FormatError
from tf2lightning.families.epibert.geometry import Geometry, cell_type, geometry, mask_rate
from tf2lightning.families.epibert.modes import is_finetune
from tf2lightning.run import Run

if TYPE_CHECKING:
    from tf2lightning.families.epibert.datamodule import EpiBERTDataModule

SPLITS = ("train", "val", "test")
EXAMPLE_KEYS = ("sequence", "atac", "peaks_center", "motif_activity")
"""The stored fields an example's augmentation reads (and ``rna`` when fine-tuning)."""
CODE_OF_ASCII = np.full(256, 4, dtype=np.uint8)
for _code, _base in enumerate(b"ACGT"):
    CODE_OF_ASCII[_base] = CODE_OF_ASCII[_base + 32] = _code


def _bytes(example: dict[str, Any], key: str, where: str) -> bytes:
    value = example.get(key)
    if not isinstance(value, list) or len(value) != 1:
        raise FormatError(f"{where}: feature {key!r} must be one bytes value")
    return value[0]


def _tensor(example: dict[str, Any], key: str, dtype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        array = parse_tensor(_bytes(example, key, where))
    except FormatError as error:
        raise FormatError(f"{where}: feature {key!r}: not a serialized tensor ({error})") from None
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise FormatError(
            f"{where}: feature {key!r}: expected a {dtype} tensor of shape {shape}, "
            f"found {array.dtype} {array.shape}"
        )
    return array


def _parse(record: bytes, where: str) -> dict[str, Any]:
    try:
        return parse_example(record)
    except FormatError as error:
        raise FormatError(f"{where}: not a tf.train.Example ({error})") from None


def read_example(record: bytes, geo: Geometry, where: str, rna: bool = False) -> dict[str, Any]:
    """One record -> the HDF5 row (with ``rna`` if asked); errors name the file and the record."""
    example = _parse(record, where)
    sequence = _bytes(example, "sequence", where)
    if len(sequence) != geo.stored_length:
        raise FormatError(f"{where}: sequence has {len(sequence)} bp, expected {geo.stored_length}")
    row = {
        "sequence": CODE_OF_ASCII[np.frombuffer(sequence, np.uint8)],
        "atac": _tensor(example, "atac", "float16", (geo.atac_length, 1), where)[:, 0],
        "peaks": _tensor(example, "peaks", "int32", (geo.n_tokens,), where).astype(np.uint8),
        "peaks_center": _tensor(example, "peaks_center", "int32", (geo.n_tokens,), where).astype(np.uint8),
        "motif_activity": _tensor(example, "motif_activity", "float16", (geo.n_motifs,), where),
        "interval": _bytes(example, "interval", where).decode("utf-8", errors="replace"),
    }
    if rna:
        row["rna"] = _tensor(example, "rna", "float16", (geo.n_tokens, 1), where)[:, 0]
    return row


def has_rna(path: Path) -> bool:
    """Whether the first record of a TFRecord file carries the fine-tuning target ``rna``."""
    records = iter_records(path)
    try:
        first = next(records, None)
    finally:
        records.close()
    return first is not None and "rna" in _parse(first, f"{path}: record 0")


def split_files(legacy_dir: Path, split: str, cell_type: str) -> list[Path]:
    """The TFRecords of one split and cell type: upstream's ``<split>/<cell type>.tfr`` and/or parts
    ``<split>/<cell type>-*.tfr``."""
    folder = Path(legacy_dir) / split
    files = [*sorted(folder.glob(f"{cell_type}.tfr")), *sorted(folder.glob(f"{cell_type}-*.tfr"))]
    if not files:
        raise FormatError(f"{folder / f'{cell_type}.tfr'}: missing TFRecord file of split {split!r}")
    return files


def shards(run: Run, legacy_dir: Path) -> list[Shard]:
    """One shard per TFRecord file of the cell type, splits in order."""
    return [
        Shard(shard_name(legacy_dir, path), split, (path,))
        for split in SPLITS
        for path in split_files(legacy_dir, split, cell_type(run))
    ]


def convert(run: Run, legacy_dir: Path, out_h5: Path) -> None:
    """Write every split of the cell type ``cell_type(run)`` into ``out_h5``."""
    _write(run, Path(legacy_dir), shards(run, Path(legacy_dir)), Path(out_h5))


def convert_shard(run: Run, legacy_dir: Path, shard: Shard, out_h5: Path) -> None:
    """The rows of one shard's files, in the layout of :func:`convert` (for ``core.shards.gather``)."""
    _write(run, Path(legacy_dir), [shard], Path(out_h5))


def _write(run: Run, legacy_dir: Path, parts: list[Shard], out_h5: Path) -> None:
    geo = geometry(run)
    rna = has_rna(split_files(legacy_dir, SPLITS[0], cell_type(run))[0])  # the dataset's first file decides
    fields = {
        "sequence": Field(np.uint8, (geo.stored_length,), "bitshuffle-lz4"),
        "atac": Field(np.float16, (geo.atac_length,), "bitshuffle-lz4"),
        "peaks": Field(np.uint8, (geo.n_tokens,), "bitshuffle-lz4"),
        "peaks_center": Field(np.uint8, (geo.n_tokens,), "bitshuffle-lz4"),
        "motif_activity": Field(np.float16, (geo.n_motifs,)),
        "interval": Field(str),
        "split": Field(np.uint8),
    }
    if rna:
        fields["rna"] = Field(np.float16, (geo.n_tokens,), "bitshuffle-lz4")
    attrs = {"splits": list(SPLITS), "cell_type": cell_type(run), "source": str(legacy_dir)}
    with H5Writer(out_h5, fields, attrs) as out:
        for shard in parts:
            for path in shard.paths:
                rows = [
                    read_example(r, geo, f"{path}: record {i}", rna) for i, r in enumerate(iter_records(path))
                ]
                if not rows:
                    raise FormatError(f"{path}: no records")
                batch = {key: [row[key] for row in rows] for key in rows[0]}
                out.append({**batch, "split": np.full(len(rows), SPLITS.index(shard.split), np.uint8)})


def make_datamodule(run: Run, h5: Path, **_: Path) -> EpiBERTDataModule:
    """The family's LightningDataModule (torch side; imported here so ``convert`` needs no torch); a
    fine-tuning run's batches carry the expression target. Extra inputs (a pretrained model) are not data."""
    from tf2lightning.families.epibert.datamodule import EpiBERTDataModule

    return EpiBERTDataModule(
        h5,
        geometry(run),
        rate=mask_rate(run),
        batch_size=int(run.train.get("batch_size", 16)),
        num_workers=int(run.train.get("num_workers", 0)),
        seed=run.seed,
        rna=is_finetune(run.arch),
    )
