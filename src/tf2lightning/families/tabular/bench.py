"""Tabular benchmark factories (see :mod:`tf2lightning.bench`); torch is imported lazily.

Training is timed over whole runs: ``training.fit`` with the plain loop (``plain.train_plain``) and with
the Lightning stage, same model, data, teacher, settings and thread count, early stopping off so both run
every epoch (at most :data:`EPOCHS`), fp32; validation and checkpointing are part of what is timed, as
they are of what a user waits for. The plain loop runs on the CPU only, so both are timed there
(:data:`DEVICE`). Loading is not compared: the plain loop reads through the same DataModule.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tf2lightning.run import Run

TASKS = ("training", "convert")
DEVICE = "cpu"
EPOCHS = 10
"""Epochs of each timed run at most (the run's ``max_epochs`` when smaller)."""


def bench_run(run: Run) -> Run:
    """The run both loops train with here: no early stopping, at most :data:`EPOCHS` epochs, fp32."""
    epochs = min(int(run.train.get("max_epochs", EPOCHS)), EPOCHS)
    train = {**run.train, "max_epochs": epochs, "patience": None, "precision": "32-true"}
    return dataclasses.replace(run, train=train)


def torch_fit(run: Run, paths: dict[str, Any], out_dir: Path, *, lightning: bool) -> int:
    """One whole training run into ``out_dir`` by the plain loop or Lightning; the examples trained."""
    from tf2lightning.families.tabular.data import read_table
    from tf2lightning.families.tabular.training import fit

    run = bench_run(run)
    teacher = Path(paths["teacher"]) if paths.get("teacher") else None
    fit(
        run,
        Path(paths["h5"]),
        out_dir / "model.pt",
        out_dir / "history.tsv",
        teacher=teacher,
        init_weights=Path(paths["weights"]),
        use_lightning=lightning,
    )
    n_train = int((read_table(Path(paths["h5"])).split == 0).sum())
    return n_train * int(run.train["max_epochs"])
