"""The published-size EpiBERT training comparison (benchmarks/epibert_published_training.py): its synthetic
batch as the converter stores rows, its run's sizes, and the report picking up its tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.test_epibert_family import FINETUNE, GEO
from tf2lightning.bench.family_hooks import extra_tables
from tf2lightning.errors import ConfigError
from tf2lightning.families.epibert.bench import synthetic_train_batch, torch_batch
from tf2lightning.families.epibert.geometry import geometry

ROOT = Path(__file__).resolve().parents[1]


def _script():
    path = ROOT / "benchmarks" / "epibert_published_training.py"
    spec = importlib.util.spec_from_file_location("epibert_published_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_batch_has_the_stored_layout_and_augments() -> None:
    batch = synthetic_train_batch(FINETUNE, 2)
    shapes = {
        "sequence": (2, GEO.stored_length),
        "atac": (2, GEO.atac_length),
        "peaks_center": (2, GEO.n_tokens),
        "motif_activity": (2, GEO.n_motifs),
        "rna": (2, GEO.n_tokens),
    }
    assert {k: batch[k].shape for k in shapes} == shapes
    assert batch["sequence"].dtype == np.uint8 and batch["sequence"].max() <= 3
    assert batch["peaks_center"].dtype == np.uint8 and batch["atac"].sum() > 0
    assert any(k.startswith("draw_") for k in batch)
    collated = torch_batch(FINETUNE, batch)  # the torch pipeline takes it as it takes data.h5's rows
    assert collated["sequence"].shape[:2] == (2, GEO.input_length)


def test_published_training_run_keeps_published_sizes_but_the_window() -> None:
    script = _script()
    run = script.published_training_run(32768)
    geo = geometry(run)
    assert (geo.n_tokens, geo.n_motifs, run.arch["num_layers"], run.arch["attention"]) == (
        256,
        693,
        8,
        "performer",
    )
    assert run.train["batch_size"] == 1 and run.arch["legacy_lr"] > 0
    with pytest.raises(ConfigError, match="mask_size"):
        script.published_training_run(16384)


def test_report_picks_up_published_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert extra_tables("epibert") == [] and extra_tables("dga") == []
    out = tmp_path / "results/epibert/published/bench"
    out.mkdir(parents=True)
    (out / "training_32768bp.tsv").write_text("family\n")
    (out / "other.tsv").write_text("family\n")
    assert extra_tables("epibert") == ["results/epibert/published/bench/training_32768bp.tsv"]
