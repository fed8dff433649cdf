"""EpiBERT benchmark factories (see :mod:`tf2lightning.bench`); each imports its framework lazily.

Training: both sides start from one batch of stored rows and one set of augmentation draws
(:mod:`~tf2lightning.families.epibert.draws`), which each side augments with its own pipeline
(``tfdata.augment`` / ``augment.augment``), so both train on the same examples. The TF side times the
source's ``tf.function`` train step (``legacy.run_train_step``), the torch side the port's loss
(``lit``'s ``batch_loss``) in a plain loop and under Lightning. Loading: the source's ``tf.data`` pipeline
on the ZLIB TFRecords (parse + augmentation) vs the HDF5 DataModule (reads + the same augmentation).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.hdf5_store import first_rows
from tf2lightning.families.epibert.data import CODE_OF_ASCII, EXAMPLE_KEYS
from tf2lightning.families.epibert.draws import draw, stack
from tf2lightning.families.epibert.geometry import cell_type, geometry, mask_rate
from tf2lightning.families.epibert.modes import is_finetune
from tf2lightning.families.epibert.synthetic import generate
from tf2lightning.run import Run

TASKS = ("inference", "training", "loading", "convert")
PUBLISHED_TABLES = "results/epibert/published/bench/training_*.tsv"
"""Where ``benchmarks/epibert_published_training.py`` writes the published-size training comparison."""


def extra_tables() -> list[str]:
    """The published-size training tables that exist (none unless that script was run), for the report."""
    return sorted(str(p) for p in Path().glob(PUBLISHED_TABLES))


DRAW = "draw_"


def train_batch(run: Run, h5: Path, batch_size: int) -> dict[str, np.ndarray]:
    """The first ``batch_size`` training rows as stored (``rna`` too when fine-tuning) and one set of
    draws per row (``draw_<name>``) from ``default_rng(run.seed)``."""
    keys = (*EXAMPLE_KEYS, "rna") if is_finetune(run.arch) else EXAMPLE_KEYS
    return with_draws(run, first_rows(h5, "train", batch_size, keys))


def synthetic_train_batch(run: Run, batch_size: int) -> dict[str, np.ndarray]:
    """:func:`train_batch` of ``batch_size`` synthetic rows (:mod:`~tf2lightning.families.epibert.synthetic`)
    as the converter stores them, for sizes without a converted dataset (the published one)."""
    geo = geometry(run)
    made = generate(np.random.default_rng(run.seed), geo, cell_type(run), batch_size, "train")
    rows = {
        "sequence": np.stack([CODE_OF_ASCII[np.frombuffer(e.sequence, np.uint8)] for e in made]),
        "atac": np.stack([e.atac[:, 0] for e in made]),
        "peaks_center": np.stack([e.peaks_center.astype(np.uint8) for e in made]),
        "motif_activity": np.stack([e.motif_activity for e in made]),
    }
    if is_finetune(run.arch):
        rows["rna"] = np.stack([e.rna.reshape(-1) for e in made])
    return with_draws(run, rows)


def with_draws(run: Run, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``rows`` and one set of draws per row (``draw_<name>``) from ``default_rng(run.seed)``."""
    rng, geo = np.random.default_rng(run.seed), geometry(run)
    draws = stack([draw(rng, geo) for _ in range(len(rows["sequence"]))])
    return {**rows, **{DRAW + k: v for k, v in draws.items()}}


def examples(batch: dict[str, np.ndarray]) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """``(stored row, draws)`` of each example of a :func:`train_batch`."""
    stored = {k: v for k, v in batch.items() if not k.startswith(DRAW)}
    draws = {k.removeprefix(DRAW): v for k, v in batch.items() if k.startswith(DRAW)}
    for i in range(len(batch["sequence"])):
        yield {k: v[i] for k, v in stored.items()}, {k: v[i] for k, v in draws.items()}


def tf_train_step(run: Run, model: Any, batch: dict[str, np.ndarray]) -> Any:
    """One step of the source's train step on the batch, augmented by the TF pipeline."""
    import tensorflow as tf

    from tf2lightning.families.epibert import legacy, tfdata

    geo, rate = geometry(run), mask_rate(run)
    augmented = [
        tfdata.augment({k: tf.constant(v) for k, v in row.items()}, draws, geo, rate)
        for row, draws in examples(batch)
    ]
    stacked = {k: tf.stack([a[k] for a in augmented]) for k in augmented[0]}
    inputs = tfdata.model_inputs(stacked)
    targets = [stacked[k] for k in ("target", "mask", "rna") if k in stacked]
    step, _ = legacy.run_train_step(run, model)
    return lambda: float(step(inputs, *targets))


def torch_batch(run: Run, batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """The batch, augmented by the torch pipeline and collated as the DataModule does."""
    from torch.utils.data import default_collate

    from tf2lightning.families.epibert.augment import augment

    geo, rate = geometry(run), mask_rate(run)
    return default_collate([augment(row, draws, geo, rate) for row, draws in examples(batch)])


def tf_dataset(run: Run, legacy_dir: Path, batch_size: int) -> Any:
    """The source's input pipeline on the training TFRecords, with fresh draws per example."""
    from tf2lightning.families.epibert import tfdata

    return tfdata.make_dataset(
        legacy_dir,
        "train",
        cell_type(run),
        geometry(run),
        mask_rate(run),
        batch_size,
        run.seed,
        rna=is_finetune(run.arch),
    )


def legacy_reads(run: Run, legacy_dir: Path, batch_size: int) -> list[Any]:
    """The source's ``tf.data`` decoding (``tfdata.parse``: ZLIB TFRecords -> stored tensors, no
    augmentation) of every file the converter converts (``data.shards``), in batches."""
    import tensorflow as tf

    from tf2lightning.families.epibert import data, tfdata

    geo = geometry(run)

    def decoded(path: Path) -> Any:
        rna, dtypes = data.has_rna(path), tfdata.record_dtypes(path)
        records = tf.data.TFRecordDataset(str(path), compression_type=tfdata.COMPRESSION)
        return records.map(lambda record: tfdata.parse(record, geo, rna, dtypes)).batch(batch_size)

    return [decoded(path) for shard in data.shards(run, legacy_dir) for path in shard.paths]
