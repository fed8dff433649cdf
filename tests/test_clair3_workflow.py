"""The workflow on upstream's own Clair3 files, as a user points it at them: a folder of upstream's bins,
a released model folder (the arch's network picks ``pileup`` or ``full_alignment``) and a Train.py
SavedModel folder, through the chain to ``parity.tsv`` and ``export/model.onnx`` (the reference,
conversion, parity and export rules)."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from tests.upstream_fixtures import upstream_dir
from tests.workflow_runner import copy_workflow, snakemake

HEAD_NAMES = ["gt21", "genotype", "indel_length_1", "indel_length_2"]


def write_config(path: Path) -> Path:
    """A config naming the fixtures by absolute path (archs named apart from the demo's P and F)."""
    root = upstream_dir("clair3")
    upont = {
        "platform": "ont",
        "depth": 89,
        "legacy_data": str(root / "bins" / "ont"),  # upstream's bins: probes are the chr2 (test) sites
        "split": {"by": "chromosome", "val": [], "test": ["chr2"]},
    }
    config = {
        "families": {
            "clair3": {
                "datasets": {"upont": upont},
                "archs": {
                    "relP": {"network": "P", "legacy_model": str(root / "released_ont")},
                    "trainF": {
                        "network": "F",
                        "legacy_model": str(root / "trainpy_savedmodel" / "full_alignment.01"),
                    },
                },
                # Layers: the SELU head values reach ~50, where float32 rounding alone is ~4e-6 a step.
                "parity": {"atol": 1e-5, "rtol": 1e-6, "n_probe": 8},
            }
        }
    }
    path.write_text(yaml.safe_dump(config))
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
