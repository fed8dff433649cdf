"""The legacy side of the tabular family, in plain PyTorch: the upstream dataset, the plain-loop model,
and its reference outputs (numpy, from the saved tensors).

``write_data`` writes ``dataset.npz`` (see :mod:`data` for the format); ``train_model`` trains with the
plain loop (``use_lightning=False``) for ``legacy_epochs`` and saves ``model.pt`` (a ``weights_only``-safe
dict: ``model_state_dict``, ``config``, ``history``). No teacher exists at that point of the workflow, so the
legacy model trains without distillation; every other configured feature is on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from tf2lightning.core.reference_file import write_reference_arrays
from tf2lightning.families.tabular import model as tabular_model
from tf2lightning.families.tabular import numpy_reference
from tf2lightning.families.tabular.data import read_legacy, write_legacy
from tf2lightning.families.tabular.datamodule import TabularDataModule
from tf2lightning.families.tabular.datasets import load_table
from tf2lightning.families.tabular.plain import seed_all, train_plain
from tf2lightning.families.tabular.weights import read_source
from tf2lightning.run import Run
from tf2lightning.stages.train import save_model

MODEL_FILE = "model.pt"


def write_data(run: Run, out_dir: Path) -> None:
    """The configured scikit-learn dataset, split and standardized, as ``out_dir/dataset.npz``."""
    write_legacy(load_table(run), Path(out_dir))


def legacy_run(run: Run) -> Run:
    """The run the legacy model trains with: ``legacy_epochs`` epochs, no distillation."""
    train = {**run.train, "max_epochs": int(run.arch["legacy_epochs"]), "distill_weight": 0.0}
    return dataclasses.replace(run, train=train)


def train_model(run: Run, data_dir: Path, out_dir: Path) -> None:
    """Train with the plain loop on the legacy dataset; write ``out_dir/model.pt``."""
    torch.set_num_threads(run.threads)
    run = legacy_run(run)
    seed_all(run.seed)
    classifier = tabular_model.build(run)
    datamodule = TabularDataModule.from_table(run, read_legacy(Path(data_dir)))
    history = train_plain(run, classifier, datamodule, Path(out_dir))
    save_model(classifier, run, history, Path(out_dir) / MODEL_FILE)


def reference(run: Run, model_dir: Path, data_dir: Path, out_h5: Path) -> None:
    """The plain model's probabilities and parity-layer activations on the first ``n_probe`` test rows,
    computed from its saved tensors by :mod:`numpy_reference` (float64, rounded to float32), not by the
    port's modules: parity then tests :mod:`model` against math written separately."""
    state = read_source(run, Path(model_dir) / MODEL_FILE)
    table = read_legacy(Path(data_dir))
    probe = table.x[table.split == 2][: int(run.parity["n_probe"])]
    computed = numpy_reference.forward(state, run.arch, probe)
    layers = {name: computed[name].astype(np.float32) for name in tabular_model.PARITY_LAYERS}
    outputs = {name: computed[name].astype(np.float32) for name in tabular_model.PARITY_OUTPUTS}
    write_reference_arrays(
        out_h5,
        {"x": np.ascontiguousarray(probe)},
        outputs,
        layers,
        attrs={
            "producer": "numpy forward of the plain model's tensors (families/tabular/numpy_reference.py)"
        },
    )
