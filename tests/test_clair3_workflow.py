"""The workflow on upstream's own Clair3 files, as a user points it at them: a folder of upstream's bins,
a released model folder (the arch's network picks ``pileup`` or ``full_alignment``) and a Train.py
SavedModel folder, through the chain to ``parity.tsv`` and ``export/model.onnx`` (the reference,
conversion, parity and export rules)."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.upstream_fixtures import upstream_dir
from tests.workflow_runner import REPO, copy_workflow, snakemake

HEAD_NAMES = ["gt21", "genotype", "indel_length_1", "indel_length_2"]


def write_config(path: Path) -> Path:
    """``tests/configs/clair3_upstream.yaml`` with the fixtures named by absolute path."""
    root = upstream_dir("clair3")
    text = (REPO / "tests" / "configs" / "clair3_upstream.yaml").read_text()
    path.write_text(text.replace("../shared/upstream/clair3", str(root)))
    return path


def test_parity_and_export_of_upstream_models(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    config = write_config(tmp_path / "clair3_upstream.yaml")
    targets = [
        f"results/clair3/upont_{arch}/{name}"
        for arch in ("relP", "trainF")
        for name in ("parity.tsv", "export/model.onnx")
    ]
    snakemake(workdir, "--configfile", config, "-c2", *targets)
    for arch, heads in (("relP", 2), ("trainF", 4)):
        table = workdir / f"results/clair3/upont_{arch}/parity.tsv"
        lines = [line for line in table.read_text().splitlines() if not line.startswith("#")]
        rows = list(csv.DictReader(lines, delimiter="\t"))
        assert [r["legacy_name"] for r in rows if r["kind"] == "output"] == HEAD_NAMES[:heads]
        assert rows and all(r["ok"] == "true" for r in rows), table.read_text()
        assert (workdir / f"results/clair3/upont_{arch}/export/model.onnx").stat().st_size > 0


def test_a_checkpoint_prefix_is_a_legacy_model(tmp_path: Path) -> None:
    """A prefix names no file; the rules take its ``.index`` as their input (a dry run plans the chain)."""
    workdir = copy_workflow(tmp_path / "workflow")
    config = write_config(tmp_path / "clair3_upstream.yaml")
    prefix = upstream_dir("clair3", "released_ont") / "pileup"
    config.write_text(
        config.read_text().replace(f"legacy_model: {prefix.parent}}}", f"legacy_model: {prefix}}}", 1)
    )
    assert f"legacy_model: {prefix}}}" in config.read_text()
    proc = snakemake(workdir, "--configfile", config, "-n", "results/clair3/upont_relP/parity.tsv")
    assert f"{prefix}.index" in proc.stdout and "rule convert_weights" in proc.stdout


def test_demo_config_heads_beat_majority(tmp_path: Path) -> None:
    """The demo config's (``config/config.yaml``) Clair3 combinations, ont_P and ont_F, through to
    ``eval.tsv`` (only the rules it needs: ~2 min on 2 cores): every head's test accuracy beats always
    answering its majority class (``tf2lightning.claims``). The smallest margin is F's gt21, 0.245 vs 0.175
    on 200 test sites; two runs (one converting in one job, one by shards) wrote identical eval.tsv files."""
    from tf2lightning.claims import claims_for, failures, read_metrics

    workdir = copy_workflow(tmp_path / "workflow")
    targets = [f"results/clair3/ont_{arch}/eval.tsv" for arch in ("P", "F")]
    snakemake(workdir, "-c2", *targets)
    for target in targets:
        metrics = read_metrics(workdir / target)
        assert len(claims_for("clair3", metrics)) == 4, metrics  # all four heads were evaluated
        assert failures("clair3", metrics) == [], (target, metrics)
