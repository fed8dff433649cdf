"""DGA data: the legacy TFRecords (+ JSON sidecar) -> one HDF5 table, and the LightningDataModule.

HDF5 layout (one row per domain; 64 rows to a chunk of ``tokens``, 1024 of the others): ``tokens`` uint8
(max_len) Bitshuffle-LZ4, ``label`` int64, ``split`` uint8 (index into the ``splits`` attribute), ``domain``
UTF-8 string; attributes
``classes``, ``splits``, ``max_len``, ``alphabet``, ``source``, and ``skipped_records`` with
``skipped_record_indices`` (``{file: [record index, ...]}``; non-empty only with ``skip_bad_records``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2lightning.core.bad_records import BadRecordPolicy
from tf2lightning.core.hdf5_store import Field, H5Writer
from tf2lightning.core.shards import Shard, shard_name
from tf2lightning.core.tfrecord import parse_example
from tf2lightning.errors import FormatError
from tf2lightning.families.dga.alphabet import ALPHABET, encode_domains
from tf2lightning.families.dga.synthetic import class_names
from tf2lightning.run import Run

if TYPE_CHECKING:
    from tf2lightning.families.dga.datamodule import DomainDataModule

SPLITS = ("train", "val", "test")
SIDECAR = "dataset.json"
TOKEN_CHUNK_ROWS, SCALAR_CHUNK_ROWS = 64, 1024
log = logging.getLogger(__name__)


def read_sidecar(legacy_dir: Path) -> dict[str, Any]:
    """The dataset's JSON sidecar (classes, max_len, split sizes), checked for the keys we need."""
    path = legacy_dir / SIDECAR
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError(f"{path}: missing; the legacy dataset needs its JSON sidecar") from None
    except json.JSONDecodeError as error:
        raise FormatError(f"{path}: not valid JSON ({error})") from None
    for key in ("classes", "max_len"):
        if key not in meta:
            raise FormatError(f"{path}: no {key!r} entry")
    return meta


def decode_record(record: bytes, n_classes: int) -> tuple[str, int]:
    """The domain and label of one serialized ``tf.train.Example``; a bad record raises FormatError."""
    try:
        example = parse_example(record)
    except FormatError as error:
        raise FormatError(f"not a tf.train.Example ({error})") from None
    domain, label = example.get("domain"), example.get("label")
    if domain is None:
        raise FormatError("feature 'domain' must be one bytes value, the record has none (missing feature)")
    if label is None:
        raise FormatError("feature 'label' must be one int64 value, the record has none (missing feature)")
    if not isinstance(domain, list) or len(domain) != 1:
        raise FormatError(f"feature 'domain' must be one bytes value, found {_describe(domain)}")
    if not isinstance(label, np.ndarray) or label.dtype != np.int64 or label.shape != (1,):
        raise FormatError(f"feature 'label' must be one int64 value, found {_describe(label)}")
    if not 0 <= label[0] < n_classes:
        raise FormatError(f"label {label[0]} outside 0..{n_classes - 1}")
    return domain[0].decode("utf-8", errors="replace"), int(label[0])


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} values of shape {value.shape}"
    if isinstance(value, list):
        return f"{len(value)} bytes value(s)"
    return type(value).__name__


def read_split(
    path: Path, n_classes: int, policy: BadRecordPolicy | None = None
) -> tuple[list[str], np.ndarray]:
    """Domains and labels of one TFRecord file; errors name the file and the record index.

    ``policy`` decides whether a bad record (data CRC, missing or malformed feature) stops the conversion
    or is skipped and counted; by default it stops it. A file without a single usable record is an error.
    """
    policy = policy or BadRecordPolicy()
    domains: list[str] = []
    labels: list[int] = []
    for index, record in policy.records(path):
        try:
            domain, label = decode_record(record, n_classes)
        except FormatError as error:
            policy.reject(path, index, error)
            continue
        domains.append(domain)
        labels.append(label)
    if not domains:
        skipped = policy.skipped.get(str(path), [])
        if not skipped:  # every record is either used, skipped, or has raised already
            raise FormatError(f"{path}: record 0: empty shard, the split file holds no records")
        raise FormatError(f"{path}: all {len(skipped)} records are bad (indices {skipped[:20]})")
    return domains, np.asarray(labels, dtype=np.int64)


def split_files(legacy_dir: Path, split: str) -> list[Path]:
    """The TFRecord files of one split: ``<split>.tfrecord`` and/or parts ``<split>-*.tfrecord``."""
    files = [*sorted(legacy_dir.glob(f"{split}.tfrecord")), *sorted(legacy_dir.glob(f"{split}-*.tfrecord"))]
    if not files:
        raise FormatError(f"{legacy_dir / f'{split}.tfrecord'}: missing split file")
    return files


def shards(run: Run, legacy_dir: Path) -> list[Shard]:
    """One shard per TFRecord file, splits in order (the workflow converts each in its own job)."""
    legacy_dir = Path(legacy_dir)
    return [
        Shard(shard_name(legacy_dir, path), split, (path,))
        for split in SPLITS
        for path in split_files(legacy_dir, split)
    ]


def convert(run: Run, legacy_dir: Path, out_h5: Path) -> None:
    """Write every split of the legacy dataset into ``out_h5`` (nothing is left if a record is bad).

    With the dataset's ``skip_bad_records`` set, bad records are skipped instead; their count and indices
    per file go to the HDF5 attributes and the log.
    """
    _write(run, Path(legacy_dir), shards(run, legacy_dir), Path(out_h5))


def convert_shard(run: Run, legacy_dir: Path, shard: Shard, out_h5: Path) -> None:
    """The rows of one shard's files, in the layout of :func:`convert` (for ``core.shards.gather``)."""
    _write(run, Path(legacy_dir), [shard], Path(out_h5))


def _write(run: Run, legacy_dir: Path, parts: list[Shard], out_h5: Path) -> None:
    meta = read_sidecar(legacy_dir)
    policy = BadRecordPolicy(skip=bool(run.dataset.get("skip_bad_records", False)))
    classes, max_len = list(meta["classes"]), int(meta["max_len"])
    if tuple(classes) != class_names(run):
        raise FormatError(
            f"{legacy_dir / SIDECAR}: classes {classes} differ from the configured "
            f"families.dga.datasets.{run.dataset_name}.classes {list(class_names(run))}"
        )
    fields = {  # rows of tens of bytes: 64 or 1024 to a chunk (one per row made writes 15x slower, reads 2x)
        "tokens": Field(np.uint8, (max_len,), "bitshuffle-lz4", TOKEN_CHUNK_ROWS),
        "label": Field(np.int64, (), None, SCALAR_CHUNK_ROWS),
        "split": Field(np.uint8, (), None, SCALAR_CHUNK_ROWS),
        "domain": Field(str, (), None, SCALAR_CHUNK_ROWS),
    }
    attrs = {
        "classes": classes,
        "splits": list(SPLITS),
        "max_len": max_len,
        "alphabet": ALPHABET,
        "source": str(legacy_dir),
    }
    with H5Writer(out_h5, fields, attrs) as out:
        for shard in parts:
            for path in shard.paths:
                domains, labels = read_split(path, len(classes), policy)
                out.append(
                    {
                        "tokens": encode_domains(domains, max_len).astype(np.uint8),
                        "label": labels,
                        "split": np.full(len(labels), SPLITS.index(shard.split), dtype=np.uint8),
                        "domain": domains,
                    }
                )
        out.attrs.update(policy.h5_attrs())
    policy.log_summary(log)


def make_datamodule(run: Run, h5: Path) -> DomainDataModule:
    """The family's LightningDataModule (torch side; imported here so ``convert`` needs no torch)."""
    from tf2lightning.families.dga.datamodule import DomainDataModule

    return DomainDataModule(
        h5,
        batch_size=int(run.train.get("batch_size", 64)),
        num_workers=int(run.train.get("num_workers", 0)),
        seed=run.seed,
    )
