"""The workflow on upstream's six D3 run folders, pointed at them as a user would (one Snakemake run).

``results/d3/<ds>_<arch>/parity.tsv`` compares the port with upstream's own log-scores (the run folder's
``probe.npz``), and the exported ONNX model reproduces them on upstream's inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml

from tests.upstream_fixtures import upstream_dir
from tests.workflow_runner import REPO, copy_workflow, snakemake

DATASETS = ("deepstarr", "mpra", "promoter")
ARCHS = ("Tran", "Conv")


@pytest.mark.workflow
def test_parity_and_exports_of_every_upstream_run_folder(tmp_path: Path) -> None:
    root = upstream_dir("d3")
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["families"]["d3"] = {  # only what a user of upstream's runs writes: where they are
        "datasets": {d: {"legacy_data": str(root / "data" / d)} for d in DATASETS},
        "archs": {a: {"legacy_model": str(root / f"{{dataset}}_{a}")} for a in ARCHS},
    }
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    prefixes = [f"results/d3/{d}_{a}" for d in DATASETS for a in ARCHS]
    targets = [f"{p}/{name}" for p in prefixes for name in ("parity.tsv", "export/model.onnx")]
    snakemake(workdir, "-c2", *targets)
    for prefix in prefixes:
        table = (workdir / prefix / "parity.tsv").read_text()
        assert table.startswith("# verdict: PASS\n"), table
        with np.load(root / Path(prefix).name / "probe.npz") as probe:
            arrays = [probe[k] for k in ("x", "labels", "sigma")]
            expected = probe["log_score_ema"]
        session = onnxruntime.InferenceSession(str(workdir / prefix / "export/model.onnx"))
        feeds = {node.name: a for node, a in zip(session.get_inputs(), arrays, strict=True)}
        (got,) = session.run(None, feeds)
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max(), prefix


@pytest.mark.workflow
def test_demo_config_designs_beat_random_and_shuffled_dna(tmp_path: Path) -> None:
    """The demo config (``config/config.yaml``, as ``make demo`` runs it): deepstarr_Conv and deepstarr_Tran
    through to ``eval.tsv`` (only the rules it needs, about 2-3.5 min on 2 cores). Each D3 claim holds
    (``tf2lightning.claims``: the oracle MSE beats random DNA's, upstream's sp-MSE beats shuffled DNA's).
    Measured margins: MSE ratio to random DNA 0.39-0.43 (Conv) and 0.61 (Tran), sp-MSE
    ratio to shuffled DNA 0.47-0.50 and 0.63-0.64 (a fresh-clone make demo and this test)."""
    from tf2lightning.claims import claims_for, failures, read_metrics

    workdir = copy_workflow(tmp_path)
    targets = [f"results/d3/deepstarr_{arch}/eval.tsv" for arch in ARCHS]
    snakemake(workdir, "-c2", *targets)
    for target in targets:
        metrics = read_metrics(workdir / target)
        assert len(claims_for("d3", metrics)) == 2 and failures("d3", metrics) == [], (target, metrics)
