"""EpiBERT data: the upstream TFRecords (one ZLIB file per split and cell type) -> one HDF5 file.

HDF5 layout (one row per example, one chunk per row): ``sequence`` uint8 codes A,C,G,T,N -> 0..4
(``stored_length`` = input_length + 2 x max_shift, as upstream's writers) and ``atac`` (``atac_length``),
both Bitshuffle-LZ4; ``peaks`` and ``peaks_center`` uint8 (``n_tokens``); ``motif_activity``
(``n_motifs``); ``interval`` int32 (upstream's: an index into its interval map) or text; ``split`` uint8
(index into the ``splits`` attribute); and, when the records have them (RAMPAGE fine-tuning records),
``rna`` (``n_tokens``, the expression target), ``tss_tokens`` uint8 and ``cell_encoding`` int32. Float
tensors keep their stored dtype (upstream's pretraining writer float16, its RAMPAGE writer float32); the
first record of the dataset decides the layout, every record must follow it. The validation split is read
from ``val/`` or upstream's ``valid/``.
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
SMALL_CHUNK_ROWS = 256
"""Rows to a chunk of the small fields (tokens, scalars, names): one chunk per row for them made the
converter 20% slower; the sequence and track fields keep one row per chunk (shuffled reads)."""
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


def _tensor(
    example: dict[str, Any], key: str, dtype: str | None, shape: tuple[int, ...] | None, where: str
) -> np.ndarray:
    """A serialized tensor feature, checked against ``dtype`` and ``shape`` (None: any)."""
    try:
        array = parse_tensor(_bytes(example, key, where))
    except FormatError as error:
        raise FormatError(f"{where}: feature {key!r}: not a serialized tensor ({error})") from None
    if dtype is None or shape is None:
        return array
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


FLOATS = ("atac", "motif_activity", "rna")


def record_layout(path: Path) -> dict[str, Any]:
    """What the first record of ``path`` stores, for the whole dataset: the float tensors' dtype (float16
    from upstream's pretraining writer, float32 from its RAMPAGE writer), whether ``interval`` is a
    serialized int32 (upstream's: an index into its interval map) or text, and which of the fine-tuning
    features ``rna``, ``tss_tokens``, ``cell_encoding`` it has."""
    records = iter_records(path)
    try:
        first = next(records, None)
    finally:
        records.close()
    if first is None:
        raise FormatError(f"{path}: no records")
    where = f"{path}: record 0"
    example = _parse(first, where)
    layout: dict[str, Any] = {
        "float": {k: str(_tensor(example, k, None, None, where).dtype) for k in FLOATS if k in example},
        "extras": tuple(k for k in ("rna", "tss_tokens", "cell_encoding") if k in example),
    }
    try:
        interval = parse_tensor(_bytes(example, "interval", where))
        layout["interval"] = "int32" if interval.dtype == np.int32 and interval.shape == () else "text"
    except FormatError:
        layout["interval"] = "text"
    return layout


def read_example(record: bytes, geo: Geometry, where: str, layout: dict[str, Any]) -> dict[str, Any]:
    """One record -> the HDF5 row in the dataset's ``layout`` (:func:`record_layout`); errors name the
    file and the record."""
    example = _parse(record, where)
    sequence = _bytes(example, "sequence", where)
    if len(sequence) != geo.stored_length:
        raise FormatError(
            f"{where}: sequence has {len(sequence)} bp, expected {geo.stored_length} "
            "(input_length + 2 x max_shift, as upstream's writers store it)"
        )
    floats, extras = layout["float"], layout["extras"]
    row = {
        "sequence": CODE_OF_ASCII[np.frombuffer(sequence, np.uint8)],
        "atac": _tensor(example, "atac", floats["atac"], (geo.atac_length, 1), where)[:, 0],
        "peaks": _tensor(example, "peaks", "int32", (geo.n_tokens,), where).astype(np.uint8),
        "peaks_center": _tensor(example, "peaks_center", "int32", (geo.n_tokens,), where).astype(np.uint8),
        "motif_activity": _tensor(
            example, "motif_activity", floats["motif_activity"], (geo.n_motifs,), where
        ),
    }
    if layout["interval"] == "int32":
        row["interval"] = _tensor(example, "interval", "int32", (), where)
    else:
        row["interval"] = _bytes(example, "interval", where).decode("utf-8", errors="replace")
    if "rna" in extras:
        row["rna"] = _tensor(example, "rna", floats["rna"], (geo.n_tokens, 1), where)[:, 0]
    if "tss_tokens" in extras:
        row["tss_tokens"] = _tensor(example, "tss_tokens", "int32", (geo.n_tokens,), where).astype(np.uint8)
    if "cell_encoding" in extras:
        row["cell_encoding"] = _tensor(example, "cell_encoding", "int32", (), where)
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
    if split == "val" and not folder.is_dir() and (Path(legacy_dir) / "valid").is_dir():
        folder = Path(legacy_dir) / "valid"  # upstream's folder name
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
    layout = record_layout(split_files(legacy_dir, SPLITS[0], cell_type(run))[0])  # the first file decides
    floats = {k: np.dtype(v) for k, v in layout["float"].items()}
    fields = {
        "sequence": Field(np.uint8, (geo.stored_length,), "bitshuffle-lz4"),
        "atac": Field(floats["atac"], (geo.atac_length,), "bitshuffle-lz4"),
        "peaks": Field(np.uint8, (geo.n_tokens,), "bitshuffle-lz4", SMALL_CHUNK_ROWS),
        "peaks_center": Field(np.uint8, (geo.n_tokens,), "bitshuffle-lz4", SMALL_CHUNK_ROWS),
        "motif_activity": Field(floats["motif_activity"], (geo.n_motifs,), None, SMALL_CHUNK_ROWS),
        "interval": Field(np.int32 if layout["interval"] == "int32" else str, (), None, SMALL_CHUNK_ROWS),
        "split": Field(np.uint8, (), None, SMALL_CHUNK_ROWS),
    }
    if "rna" in layout["extras"]:
        fields["rna"] = Field(floats["rna"], (geo.n_tokens,), "bitshuffle-lz4")
    if "tss_tokens" in layout["extras"]:
        fields["tss_tokens"] = Field(np.uint8, (geo.n_tokens,), "bitshuffle-lz4", SMALL_CHUNK_ROWS)
    if "cell_encoding" in layout["extras"]:
        fields["cell_encoding"] = Field(np.int32, (), None, SMALL_CHUNK_ROWS)
    attrs = {"splits": list(SPLITS), "cell_type": cell_type(run), "source": str(legacy_dir)}
    with H5Writer(out_h5, fields, attrs) as out:
        for shard in parts:
            for path in shard.paths:
                rows = [
                    read_example(r, geo, f"{path}: record {i}", layout)
                    for i, r in enumerate(iter_records(path))
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
