"""The workflow for real: planning, a small end-to-end DGA run, its outputs, and config errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.workflow_runner import REPO, copy_workflow, snakemake
from tf2lightning.claims import failures, read_metrics
from tf2lightning.core.tsv import read_tsv
from tf2lightning.families import FAMILIES

TARGET = "results/dga/domains_CnnLstm/eval.tsv"
CHAIN = {
    "legacy_data",
    "convert_data",
    "legacy_model",
    "reference",
    "convert_weights",
    "parity",
    "train",
    "evaluate",
}


def planned_jobs(stdout: str) -> dict[str, int]:
    """The ``Job stats`` table of a dry run: rule -> count."""
    jobs: dict[str, int] = {}
    for line in stdout.split("Job stats:")[1].splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match is None:
            break
        jobs[match[1]] = int(match[2])
    jobs.pop("total", None)
    return jobs


@pytest.fixture(scope="module")
def dga_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DGA chain, run once for the whole module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    snakemake(workdir, "--configfile", REPO / "tests/configs/dga.yaml", "-c2", TARGET)
    return workdir


def test_dry_run_plans_exactly_the_dga_chain(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    proc = snakemake(workdir, "-n", TARGET)
    jobs = planned_jobs(proc.stdout)
    assert set(jobs) == CHAIN
    assert jobs["convert_weights"] == 2  # from the .h5 model and from the TF checkpoint
    assert all(count == 1 for rule, count in jobs.items() if rule != "convert_weights")


def test_dry_run_of_one_d3_target_plans_only_its_chain(tmp_path: Path) -> None:
    """The example users try first: data, oracle, legacy model, conversion, parity, train, sample, eval."""
    workdir = copy_workflow(tmp_path)
    jobs = planned_jobs(snakemake(workdir, "-n", "results/d3/promoter_Tran/eval.tsv").stdout)
    expected = {"legacy_data", "convert_data", "d3_oracle", "legacy_model", "reference", "convert_weights"}
    assert jobs == dict.fromkeys(expected | {"parity", "train", "d3_sample", "evaluate"}, 1)


def test_dry_run_plans_one_conversion_job_per_input_file(tmp_path: Path) -> None:
    """A 200-file dataset: 200 shard jobs (one per TFRecord) and one gather, and nothing else."""
    workdir = copy_workflow(tmp_path / "workflow")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    names = [f"train-{i:05d}.tfrecord" for i in range(198)] + ["val.tfrecord", "test.tfrecord"]
    for name in names:
        (legacy / name).touch()
    config = tmp_path / "big.yaml"
    config.write_text(
        yaml.safe_dump({"families": {"dga": {"datasets": {"domains": {"legacy_data": str(legacy)}}}}})
    )
    proc = snakemake(workdir, "-n", "results/dga/domains/data.h5", "--configfile", config)
    assert planned_jobs(proc.stdout) == {"convert_shard": 200, "convert_data": 1}


def test_rule_all_builds_the_demo_targets_and_demo_large_every_combination(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    families = {target.split("/")[0] for target in config["targets"]}
    assert families == set(config["families"]), "the quick demo runs every configured family"
    jobs = planned_jobs(snakemake(workdir, "-n", "all").stdout)
    assert {"export", "all"} <= set(jobs) and set(jobs) >= CHAIN
    assert jobs["train"] == jobs["evaluate"] == jobs["report_combination"] == len(config["targets"])
    combinations = sum(len(f["datasets"]) * len(f["archs"]) for f in config["families"].values())
    large = planned_jobs(snakemake(workdir, "-n", "all", "--configfile", "config/demo_large.yaml").stdout)
    assert large["train"] == large["evaluate"] == combinations > len(config["targets"])

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("targets: [dga/domains_Nope]\n")
    proc = snakemake(workdir, "-n", "all", "--configfile", wrong, check=False)
    assert proc.returncode != 0 and "dga/domains_Nope" in proc.stderr + proc.stdout


def test_lint_is_clean() -> None:
    proc = snakemake(REPO, "--lint")
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_end_to_end_outputs(dga_run: Path) -> None:
    metrics = {row["metric"]: float(row["value"]) for row in read_tsv(dga_run / TARGET)}
    assert metrics["n_test"] == 200
    # The claim (tf2lightning.claims) is +0.1 over the majority class; this tiny run read accuracy 0.77 vs
    # majority 0.20 and AUROC 0.97 (the demo: 0.97 vs 0.20), so +0.3 and 0.8 still leave a wide margin.
    assert metrics["accuracy"] > metrics["majority_class_accuracy"] + 0.3
    assert failures("dga", metrics) == [] and metrics["macro_auroc"] > 0.8

    parity = dga_run / "results/dga/domains_CnnLstm/parity.tsv"
    assert parity.read_text().startswith("# verdict: PASS\n")
    rows = read_tsv(parity)
    assert {row["source"] for row in rows} == {"h5", "ckpt"}
    outputs = [row for row in rows if row["kind"] == "output"]
    assert outputs and all(float(row["max_abs_err"]) <= 1e-5 for row in outputs)
    assert all(row["ok"] == "true" for row in rows)

    saved = torch.load(dga_run / "results/dga/domains_CnnLstm/train/model.pt", weights_only=True)
    assert set(saved) == {"model_state_dict", "config", "history"}
    assert saved["config"]["family"] == "dga" and len(saved["history"]) >= 1
    assert (dga_run / "results/logs/train/dga/domains_CnnLstm.log").stat().st_size > 0
    assert (dga_run / "results/benchmarks/train/dga/domains_CnnLstm.tsv").exists()


def test_rerun_has_nothing_to_do(dga_run: Path) -> None:
    proc = snakemake(dga_run, "--configfile", REPO / "tests/configs/dga.yaml", "-n", TARGET)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_predict_command_classifies_domains(dga_run: Path) -> None:
    model = dga_run / "results/dga/domains_CnnLstm/train/model.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "tf2lightning", "predict", str(model), "-"],
        input="google.com\nq3xk9vz2rt.net\n",
        capture_output=True,
        text=True,
        check=True,
    )
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split("\t")[:2] == ["domain", "predicted"]
    assert [row.split("\t")[0] for row in rows] == ["google.com", "q3xk9vz2rt.net"]
    probabilities = [float(p) for p in rows[0].split("\t")[2:]]
    assert abs(sum(probabilities) - 1) < 1e-3


def test_bad_config_stops_before_any_job(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("families:\n  dga:\n    datasets:\n      domains:\n        n_trian: 10\n")
    proc = snakemake(workdir, "--configfile", bad, "-n", TARGET, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "config key families.dga.datasets.domains" in output and "'n_trian' was unexpected" in output
    assert not (workdir / "results").exists()


def family_configs() -> list[Path]:
    """The tiny per-family configs (``tests/configs/<family>.yaml``) other than the DGA one tested above."""
    return sorted(
        path
        for path in (REPO / "tests/configs").glob("*.yaml")
        if path.stem in FAMILIES and path.stem != "dga"
    )


# The families whose quality claim (tf2lightning.claims) the tiny configs show with a margin that held, with
# each config's first combination: tabular wine_MLP accuracy 0.86 vs majority 0.39 (+0.1 claimed); EpiBERT
# K562_finetune masked-ATAC r 0.46, 0.70 and 0.66 in three runs (floor 0.3), expression r 0.28, 0.32 and 0.29
# (floor 0.1; 960 test bins, where chance gives r about +-0.03).
# Not at this size: D3 mpra_Conv's oracle MSE ratio read 0.83 in one run and 1.004 in the next (8 designed
# sequences); Clair3's heads do not beat their majority classes after 2 epochs on 200 sites (gt21 0.05 vs
# 0.16). Those claims and DGA's are checked on the demo's eval.tsv files by
# `python -m tf2lightning.claims config/config.yaml results` (DGA's also in test_end_to_end_outputs).
CLAIMS_AT_TEST_SIZE = {"tabular", "epibert"}


@pytest.mark.parametrize("config", family_configs(), ids=lambda p: p.stem)
def test_family_chain_end_to_end(config: Path, tmp_path: Path) -> None:
    """Each family's first configured combination runs through the whole chain with parity passing."""
    family = config.stem
    section = yaml.safe_load(config.read_text())["families"][family]
    dataset, arch = section.get("runs", [[next(iter(section["datasets"])), next(iter(section["archs"]))]])[0]
    prefix = f"results/{family}/{dataset}_{arch}"
    workdir = copy_workflow(tmp_path)
    snakemake(workdir, "--configfile", config, "-c2", f"{prefix}/eval.tsv", f"{prefix}/parity.tsv")
    assert (workdir / prefix / "parity.tsv").read_text().startswith("# verdict: PASS\n")
    metrics = read_tsv(workdir / prefix / "eval.tsv")
    assert metrics and all(row["family"] == family for row in metrics)
    if family in CLAIMS_AT_TEST_SIZE:
        assert failures(family, read_metrics(workdir / prefix / "eval.tsv")) == []
