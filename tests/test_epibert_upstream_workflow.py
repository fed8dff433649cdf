"""The workflow on upstream's own EpiBERT files, as a user points it at them: ``legacy_model`` is each
checkpoint folder upstream's training scripts wrote, ``legacy_data`` upstream's record folder; sizes come
from the checkpoints (the head count too), only the Performer's ``seed`` is given. Parity and the ONNX
export must succeed for the pretraining and the fine-tuning model, and the ONNX model must give upstream's
outputs on the probe. About two minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.upstream_fixtures import upstream_dir
from tests.workflow_runner import copy_workflow, snakemake
from tf2lightning.families.epibert import upstream

ARCHS = {"up_pretrain": ("pretrain", 21), "up_finetune": ("finetune", 19)}  # kind, Performer seed


def write_config(path: Path, root: Path) -> None:
    """Absolute fixture paths; a dataset name of our own whose records' cell type is K562."""
    section = {
        "datasets": {
            "upstream": {
                "legacy_data": str(root / "data"),
                "cell_type": "K562",
                "input_length": 16384,
                "output_res": 128,
                "atac_bin": 4,
                "max_shift": 4,
                "crop": 2,
                "mask_size": 512,
            }
        },
        "archs": {
            name: {
                "legacy_model": str(root / kind / "ckpt"),
                "seed": seed,
            }  # sizes and heads: the checkpoint's
            for name, (kind, seed) in ARCHS.items()
        },
        "runs": [["upstream", name] for name in ARCHS],
        # activations reach ~30 before the transformer: fp32 layers agree to ~4e-7 relative
        "parity": {"n_probe": 2, "atol": 1.0e-5, "rtol": 1.0e-6},
    }
    targets = [f"epibert/upstream_{name}" for name in ARCHS]
    path.write_text(yaml.safe_dump({"targets": targets, "families": {"epibert": section}}))


@pytest.mark.workflow
def test_parity_and_onnx_for_both_upstream_models(tmp_path: Path) -> None:
    import onnxruntime

    root = upstream_dir("epibert")
    work = copy_workflow(tmp_path / "wf")
    write_config(work / "config" / "upstream.yaml", root)
    targets = [
        f"results/epibert/upstream_{a}/{f}" for a in ARCHS for f in ("parity.tsv", "export/model.onnx")
    ]
    snakemake(work, "--configfile", "config/upstream.yaml", "--cores", "2", *targets)
    for name, (kind, _) in ARCHS.items():
        rows = (work / f"results/epibert/upstream_{name}/parity.tsv").read_text().splitlines()
        outputs = [r.split("\t") for r in rows if "\toutput\t" in r]
        assert [o[2] for o in outputs] == (["out"] if kind == "pretrain" else ["out_atac", "out_rna"])
        assert len([r for r in rows if "\tlayer\t" in r]) >= 20
        inputs, expected = upstream.probe_arrays(root / kind / "probe.npz")
        session = onnxruntime.InferenceSession(
            str(work / f"results/epibert/upstream_{name}/export/model.onnx"),
            providers=["CPUExecutionProvider"],
        )
        feed = {
            arg.name: t.numpy()
            for arg, t in zip(session.get_inputs(), upstream.port_inputs(*inputs), strict=True)
        }
        (got,) = session.run(None, feed)
        for i, want in enumerate(expected.values()):
            mine = got[..., None] if got.ndim == 2 else got[..., i : i + 1]
            assert np.abs(mine - want).max() < 1e-5 * np.abs(want).max()


def test_a_wrong_size_stops_the_run_before_any_job(tmp_path: Path) -> None:
    root = upstream_dir("epibert")
    work = copy_workflow(tmp_path / "wf")
    config = work / "config" / "upstream.yaml"
    write_config(config, root)
    data = yaml.safe_load(config.read_text())
    data["families"]["epibert"]["archs"]["up_pretrain"]["filter_list_seq"] = [16, 24, 24, 32]
    config.write_text(yaml.safe_dump(data))
    proc = snakemake(
        work,
        "--configfile",
        config,
        "--cores",
        "1",
        "-n",
        "results/epibert/upstream_up_pretrain/parity.tsv",
        check=False,
    )
    assert proc.returncode != 0
    assert (
        "archs.up_pretrain.filter_list_seq is [16, 24, 24, 32], but the checkpoint"
        in proc.stderr + proc.stdout
    )
    assert not (work / "results").exists()
