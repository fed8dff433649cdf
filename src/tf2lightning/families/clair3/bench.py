"""Clair3 benchmark factories (see :mod:`tf2lightning.bench`); each imports its framework lazily.

Clair3's legacy model is a subclassed Keras model restored from its TF checkpoint, which needs the run's
network sizes, so the TF side loads it through :func:`tf_model` instead of the default ``load_model``.
Training: ``train_on_batch`` of the model compiled as the legacy training compiles it vs the port's
loss (``lit``'s ``batch_loss``: focal loss per head) in a plain loop and under Lightning, on the same
rows of ``data.h5``. Loading, for the pileup and the full-alignment tensors: Clair3's own ``.bin`` reader
(``legacy.bin_dataset``: shuffled chunks in a ``tf.data`` generator) vs the HDF5 DataModule.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.hdf5_store import read_rows, split_indices
from tf2lightning.families.clair3.platform import tensor_field
from tf2lightning.run import Run

TASKS = ("inference", "training", "loading", "convert")
DATA_VIEWS = {"pileup": {"network": "P"}, "full_alignment": {"network": "F"}}
"""Loading is timed for each network's tensors (the dataset-level run has no architecture)."""


def data_view(run: Run) -> str:
    """The data view a combination's report shows: its network's tensors."""
    return tensor_field(run)


def tf_model(run: Run, model_dir: Path) -> Any:
    """The legacy ``Clair3_P``/``Clair3_F`` restored from ``model_dir`` (see ``legacy.load_model``)."""
    from tf2lightning.families.clair3.legacy import load_model

    return load_model(run, model_dir)


def train_batch(run: Run, h5: Path, batch_size: int) -> dict[str, np.ndarray]:
    """The first ``batch_size`` training sites of the run's network: ``x`` tensors as stored, ``label``
    ``(B, 90)`` rows."""
    field = tensor_field(run)
    keys = (f"{field}/position_matrix", f"{field}/label")
    rows = read_rows(h5, split_indices(h5, f"{field}/split")["train"][:batch_size], keys)
    return {"x": rows[keys[0]], "label": rows[keys[1]]}


def tf_train_step(run: Run, model: Any, batch: dict[str, np.ndarray]) -> Any:
    """One ``train_on_batch`` of the legacy model, compiled as ``legacy.train_model`` compiles it."""
    from tf2lightning.families.clair3.legacy import compile_for_training, head_targets

    compile_for_training(run, model)
    targets = head_targets(batch["label"])
    return lambda: model.train_on_batch(batch["x"], targets)


def torch_batch(run: Run, batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"x", "y"}`` as the DataModule yields them (``y``: the class of each head)."""
    import torch

    from tf2lightning.families.clair3.labels import label_classes

    return {
        "x": torch.from_numpy(batch["x"]),
        "y": torch.from_numpy(label_classes(batch["label"], "benchmark batch")),
    }


def tf_dataset(run: Run, legacy_dir: Path, batch_size: int) -> Any:
    """Clair3's ``.bin`` reader on the training split (shuffled chunks, random start offset)."""
    from tf2lightning.families.clair3.legacy import bin_dataset

    return bin_dataset(run, legacy_dir, "train", batch_size, run.seed)


def legacy_reads(run: Run, legacy_dir: Path, batch_size: int) -> list[Any]:
    """Clair3's ``.bin`` reader over every split of both networks' bins (what the converter converts); a
    split too small for one of the reader's full batches (a tiny demo split) is left out, as Clair3 would."""
    from tf2lightning.families.clair3.bins import SPLITS
    from tf2lightning.families.clair3.legacy import bin_dataset

    views = [dataclasses.replace(run, arch={**run.arch, **keys}) for keys in DATA_VIEWS.values()]
    pipelines = []
    for view in views:
        for split in SPLITS:
            try:
                pipelines.append(bin_dataset(view, legacy_dir, split, batch_size, run.seed))
            except ValueError as error:
                if "no full batch" not in str(error):
                    raise
    return pipelines
