"""The per-family quality claims (``tf2lightning.claims``) on hand-written ``eval.tsv`` metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf2lightning.claims import claims_for, failures, main
from tf2lightning.core.tsv import write_tsv


def test_accuracy_must_beat_the_majority_class_by_the_margin() -> None:
    assert failures("tabular", {"accuracy": 0.81, "majority_class_accuracy": 0.7}) == []
    (problem,) = failures("dga", {"accuracy": 0.75, "majority_class_accuracy": 0.7})
    assert problem == "accuracy 0.75 > majority_class_accuracy + 0.1 = 0.8"
    assert failures("dga", {"accuracy": float("nan"), "majority_class_accuracy": 0.7})


def test_every_clair3_head_is_checked() -> None:
    metrics = {"gt21_accuracy": 0.6, "gt21_majority_accuracy": 0.5, "zygosity_accuracy": 0.4}
    metrics["zygosity_majority_accuracy"] = 0.45
    assert [c.metric for c in claims_for("clair3", metrics)] == ["gt21_accuracy", "zygosity_accuracy"]
    assert [p.split()[0] for p in failures("clair3", metrics)] == ["zygosity_accuracy"]
    assert failures("clair3", {"n_test": 64.0}) == ["no claim could be formed from the metrics ['n_test']"]


def test_epibert_floors_by_mode_and_d3_ratio() -> None:
    assert failures("epibert", {"pearson_r": 0.5}) == []
    assert failures("epibert", {"pearson_r": 0.2})  # pretraining: masked ATAC under the floor
    assert failures("epibert", {"pearson_r": 0.2, "atac_pearson_r": 0.5}) == []
    assert failures("epibert", {"pearson_r": 0.05, "atac_pearson_r": 0.5})  # expression: chance is not enough
    d3 = {"mse_ratio_diffusion_to_random": 0.7, "sp_mse_ratio_diffusion_to_shuffled": 0.8}
    assert failures("d3", d3) == []
    assert failures("d3", {**d3, "mse_ratio_diffusion_to_random": 1.02})
    assert failures("d3", {**d3, "sp_mse_ratio_diffusion_to_shuffled": 1.01})  # no better than shuffled DNA
    assert failures("d3", {"mse_random": 1.0}) == [
        "mse_ratio_diffusion_to_random: missing metric(s) ['mse_ratio_diffusion_to_random']",
        "sp_mse_ratio_diffusion_to_shuffled: missing metric(s) ['sp_mse_ratio_diffusion_to_shuffled']",
    ]


def test_main_checks_each_configured_eval_tsv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("families:\n  dga:\n    datasets: {domains: {}}\n    archs: {CnnLstm: {}, Other: {}}\n")
    results = tmp_path / "results"
    assert main([str(config), str(results)]) == 1  # nothing to check is a failure
    path = results / "dga" / "domains_CnnLstm" / "eval.tsv"
    path.parent.mkdir(parents=True)
    rows = [{"metric": "accuracy", "value": 0.9}, {"metric": "majority_class_accuracy", "value": 0.5}]
    write_tsv(path, rows, ["metric", "value"])
    assert main([str(config), str(results)]) == 0
    assert "PASS" in capsys.readouterr().out
    rows[0]["value"] = 0.55
    write_tsv(path, rows, ["metric", "value"])
    assert main([str(config), str(results)]) == 1
    assert "FAIL" in capsys.readouterr().out
