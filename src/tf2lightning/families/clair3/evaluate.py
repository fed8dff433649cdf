"""Clair3 evaluation on the test split: per head accuracy, macro-F1 and the majority-class baseline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchmetrics.functional.classification import multiclass_f1_score

from tf2lightning.core.hdf5_store import iter_batches, split_indices
from tf2lightning.families.clair3.labels import HEAD_SIZES, HEADS, label_classes
from tf2lightning.families.clair3.platform import tensor_field
from tf2lightning.run import Run


def predict_heads(model: nn.Module, x: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """Per-head probabilities of one batch (eval mode, no grad)."""
    model.eval()
    with torch.no_grad():
        return [t.softmax(-1).float().numpy() for t in model(torch.as_tensor(x))]


def iter_split(h5: Path, field: str, split: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of one split's rows of a network's group (``x`` and ``label``), streamed from the file."""
    keys = {"x": f"{field}/position_matrix", "label": f"{field}/label"}
    keep = split_indices(h5, f"{field}/split")[split]
    start = 0
    for batch in iter_batches(h5, batch_size, tuple(keys.values())):
        n = len(batch[keys["label"]])
        rows = np.flatnonzero(np.isin(np.arange(start, start + n), keep))
        start += n
        if rows.size:
            yield {name: batch[key][rows] for name, key in keys.items()}


def evaluate(run: Run, model: nn.Module, h5: Path) -> dict[str, float]:
    """Metrics of ``model`` on the test split of ``h5``, for each of its heads (4, or 2 for upstream's
    pileup models)."""
    field = tensor_field(run)
    probs: list[list[np.ndarray]] = []
    classes = []
    for batch in iter_split(h5, field, "test", 256):
        for i, p in enumerate(predict_heads(model, batch["x"])):
            if i == len(probs):
                probs.append([])
            probs[i].append(p)
        classes.append(label_classes(batch["label"], f"{h5}: test labels"))
    truth = torch.as_tensor(np.concatenate(classes))
    metrics = {"n_test": float(len(truth))}
    for i, (name, size) in enumerate(zip(HEADS, HEAD_SIZES[: len(probs)], strict=False)):
        p, y = torch.as_tensor(np.concatenate(probs[i])), truth[:, i]
        majority = float(torch.bincount(y, minlength=size).max()) / len(y)
        accuracy = float((p.argmax(1) == y).sum()) / len(y)  # exact counts, like the baseline
        metrics[f"{name}_accuracy"] = accuracy
        metrics[f"{name}_macro_f1"] = float(multiclass_f1_score(p, y, size, average="macro"))
        metrics[f"{name}_majority_accuracy"] = majority
        metrics[f"{name}_beats_majority"] = float(accuracy > majority)
    return metrics
