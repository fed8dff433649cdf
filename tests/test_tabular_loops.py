"""The plain loop and the Lightning loop agree: same loss curve and same best parameters, for both models,
with every training feature on; and dropping any one feature from one path breaks the agreement.

The loops share the data loaders, the parsed config and torch's optimizers; their steps (loss, learning
rate, validation) are separate code (``plain_step`` and ``recipe``), so agreement tests one against the
other."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from tf2lightning.config import validate_families
from tf2lightning.families.tabular import data, legacy, teacher
from tf2lightning.families.tabular.loop_parity import LoopParity, compare_loops
from tf2lightning.families.tabular.training import fit
from tf2lightning.run import Run

ARCHS = {
    "MLP": {"kind": "mlp", "hidden": [16, 8], "activation": "geglu", "dropout": 0.2},
    "Transformer": {"kind": "transformer", "d_model": 8, "heads": 2, "layers": 1, "dropout": 0.2},
}
# Every feature on, and strong enough that leaving one out shows.
TRAIN = {
    "max_epochs": 3,
    "batch_size": 32,
    "optimizer": "adamw",
    "lr": 5e-3,
    "weight_decay": 1e-2,
    "warmup_fraction": 0.3,
    "min_lr_ratio": 0.1,
    "mixup_alpha": 0.4,
    "noise_std": 0.1,
    "label_smoothing": 0.1,
    "distill_weight": 0.5,
    "temperature": 2.0,
    "consistency_weight": 0.5,
    "patience": 2,
    "gradient_clip": 0.05,
    "deterministic": True,
}
# A feature and the value that turns it off.
FEATURES = {
    "mixup_alpha": 0.0,
    "noise_std": 0.0,
    "label_smoothing": 0.0,
    "distill_weight": 0.0,
    "consistency_weight": 0.0,
    "warmup_fraction": 0.0,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "gradient_clip": None,
}


def make_run(arch: str, **train: Any) -> Run:
    section = {"datasets": {"wine": {"teacher_max_iter": 10}}, "archs": ARCHS, "train": {**TRAIN, **train}}
    config = {"seed": 2, "threads": 1, "families": {"tabular": section}}
    validate_families(config)
    return Run.from_config(config, "tabular", "wine", arch)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tabular_loops")
    run = make_run("MLP")
    (root / "legacy").mkdir()
    legacy.write_data(run, root / "legacy")
    data.convert(run, root / "legacy", root / "data.h5")
    teacher.fit_teacher(run, {"data": root / "data.h5"}, {"probs": root / "probs.h5"})
    return root


def train(run: Run, root: Path, out: Path, use_lightning: bool) -> Path:
    fit(
        run,
        root / "data.h5",
        out / "model.pt",
        out / "history.tsv",
        teacher=root / "probs.h5",
        use_lightning=use_lightning,
    )
    return out


@pytest.fixture(scope="module")
def lightning_runs(prepared: Path) -> dict[str, Path]:
    """The Lightning loop with every feature on, once per architecture."""
    return {arch: train(make_run(arch), prepared, prepared / f"lightning_{arch}", True) for arch in ARCHS}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_plain_and_lightning_loops_agree(arch: str, prepared: Path, lightning_runs: dict[str, Path]) -> None:
    run = make_run(arch)
    plain = train(run, prepared, prepared / f"plain_{arch}", False)
    parity = compare_loops(run, plain, lightning_runs[arch])
    assert parity.ok, parity.summary()
    quantities = {row.quantity for row in parity.rows}
    assert {"train_loss", "train_kd", "train_consistency", "val_loss", "parameters"} <= quantities
    assert all(0 < row.tolerance < 1e-4 for row in parity.rows if row.quantity != "step")


def _failing(parity: LoopParity) -> set[str]:
    return {row.quantity for row in parity.rows if not row.ok}


@pytest.mark.parametrize("feature", list(FEATURES))
def test_dropping_a_feature_from_the_plain_loop_breaks_parity(
    feature: str, prepared: Path, lightning_runs: dict[str, Path], tmp_path: Path
) -> None:
    run = make_run("MLP", **{feature: FEATURES[feature]})
    parity = compare_loops(run, train(run, prepared, tmp_path, False), lightning_runs["MLP"])
    assert not parity.ok, f"dropping {feature} went unnoticed: {parity.summary()}"
    assert "parameters" in _failing(parity)
    assert parity.error("parameters") > 10 * parity.row("parameters").tolerance


def test_dropping_a_feature_from_the_lightning_loop_breaks_parity(prepared: Path, tmp_path: Path) -> None:
    full = make_run("Transformer")
    plain = train(full, prepared, tmp_path / "plain", False)
    lightning = train(make_run("Transformer", mixup_alpha=0.0), prepared, tmp_path / "lightning", True)
    parity = compare_loops(full, plain, lightning)
    assert {"train_loss", "parameters"} <= _failing(parity), parity.summary()


def test_loops_stop_early_at_the_same_epoch(prepared: Path, tmp_path: Path) -> None:
    # A rate high enough to overfit within a few epochs, low enough that rounding differences between the
    # two implementations do not grow chaotically (at lr 0.3 they decide the stopping epoch).
    run = make_run("MLP", max_epochs=12, lr=0.02, warmup_fraction=0.0, patience=1)
    plain = train(run, prepared, tmp_path / "plain", False)
    lightning = train(run, prepared, tmp_path / "lightning", True)
    parity = compare_loops(run, plain, lightning)
    assert parity.ok, parity.summary()
    epochs = (plain / "history.tsv").read_text().count("\n") - 1
    assert epochs < run.train["max_epochs"]


def test_a_logged_quantity_missing_from_one_loop_fails(
    prepared: Path, lightning_runs: dict[str, Path]
) -> None:
    run = make_run("MLP")
    lightning = lightning_runs["MLP"]
    out = prepared / "plain_without_kd_column"
    train(run, prepared, out, False)
    payload = torch.load(out / "model.pt", weights_only=True)
    assert all("train_kd" in row for row in payload["history"])
    payload["history"] = [{k: v for k, v in row.items() if k != "train_kd"} for row in payload["history"]]
    torch.save(payload, out / "model.pt")
    parity = compare_loops(dataclasses.replace(run), out, lightning)
    assert _failing(parity) == {"train_kd"}
