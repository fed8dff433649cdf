"""DGA benchmark factories (see :mod:`tf2lightning.bench`); each imports its framework lazily.

The TF side uses ``legacy.load_model`` (the default) for inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.hdf5_store import first_rows
from tf2lightning.run import Run

TASKS = ("inference", "training", "loading", "convert")


def train_batch(run: Run, h5: Path, batch_size: int) -> dict[str, np.ndarray]:
    """The first ``batch_size`` training rows: ``tokens`` int32 ``(B, max_len)``, ``label`` int64 ``(B,)``."""
    data = first_rows(h5, "train", batch_size, ("tokens", "label"))
    return {"tokens": data["tokens"].astype(np.int32), "label": data["label"]}


def tf_train_step(run: Run, model: Any, batch: dict[str, np.ndarray]) -> Any:
    """One ``train_on_batch`` of the legacy model, compiled as ``legacy.train_model`` compiles it."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(float(run.arch.get("legacy_lr", 1e-3))),
        loss="sparse_categorical_crossentropy",
    )
    return lambda: model.train_on_batch(batch["tokens"], batch["label"])


def tf_dataset(run: Run, legacy_dir: Path, batch_size: int) -> Any:
    """The legacy input pipeline on the training TFRecords, shuffled as in legacy training."""
    from tf2lightning.families.dga.legacy import make_dataset

    return make_dataset(legacy_dir, "train", batch_size, shuffle=True, seed=run.seed)


def legacy_reads(run: Run, legacy_dir: Path, batch_size: int) -> list[Any]:
    """The legacy input pipeline over every split's TFRecords (what the converter converts), unshuffled."""
    from tf2lightning.families.dga.legacy import SPLITS, make_dataset

    return [make_dataset(legacy_dir, split, batch_size) for split in SPLITS]
