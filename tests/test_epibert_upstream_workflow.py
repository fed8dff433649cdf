"""The workflow on upstream's own EpiBERT files, as a user points it at them: ``legacy_model`` is each
checkpoint folder upstream's training scripts wrote, ``legacy_data`` upstream's record folder; sizes come
from the checkpoints (the head count too), only the Performer's ``seed`` is given. With ``probe.npz`` beside
each checkpoint, the parity reference's outputs are upstream's recorded ones. Parity and the exports must
succeed for the pretraining and the fine-tuning model, and TorchScript and ONNX, fed the probe in
upstream's call order and layout, must return upstream's outputs in its order. About two minutes on 2
cores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from tests.upstream_fixtures import upstream_dir
from tests.workflow_runner import copy_workflow, snakemake
from tf2lightning.core.reference_file import read_reference
from tf2lightning.families.epibert import recorded, upstream
from tf2lightning.run import Run

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


def onnx_runner(path: Path) -> Callable[..., list]:
    """The ONNX model as a function of the port's input tensors, returning its outputs in order."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [arg.name for arg in session.get_inputs()]
    return lambda *tensors: session.run(None, {n: t.numpy() for n, t in zip(names, tensors, strict=True)})


@pytest.mark.workflow
def test_parity_and_onnx_for_both_upstream_models(tmp_path: Path) -> None:
    root = upstream_dir("epibert")
    work = copy_workflow(tmp_path / "wf")
    write_config(work / "config" / "upstream.yaml", root)
    targets = [
        f"results/epibert/upstream_{a}/{f}" for a in ARCHS for f in ("parity.tsv", "export/model.onnx")
    ]
    snakemake(work, "--configfile", "config/upstream.yaml", "--cores", "2", *targets)
    for name, (kind, seed) in ARCHS.items():
        folder = work / f"results/epibert/upstream_{name}"
        rows = (folder / "parity.tsv").read_text().splitlines()
        outputs = [r.split("\t") for r in rows if "\toutput\t" in r]
        assert [o[2] for o in outputs] == (["out"] if kind == "pretrain" else ["out_atac", "out_rna"])
        assert len([r for r in rows if "\tlayer\t" in r]) >= 20
        probe = root / kind / "probe.npz"
        assert read_reference(folder / "reference.h5").attrs[recorded.REFERENCE_ATTR] == str(probe)
        exports = {
            "TorchScript": torch.jit.load(str(folder / "export/model.ts")),
            "ONNX": onnx_runner(folder / "export/model.onnx"),
        }
        arch = {"seed": seed, "num_heads": "the checkpoint's"}
        run = Run(family="epibert", dataset_name="upstream", arch_name=name, arch=arch)
        for label, exported in exports.items():
            errors = upstream.check_outputs(run, exported, probe)  # order, shapes and values
            assert max(errors.values()) < 1e-5, (label, errors)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("filter_list_seq", [16, 24, 24, 32], "archs.up_pretrain.filter_list_seq is [16, 24, 24, 32], but"),
        ("num_heads", 8, "archs.up_pretrain.num_heads is 8, but the checkpoint"),
    ],
)
def test_a_wrong_size_stops_the_run_before_any_job(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    root = upstream_dir("epibert")
    work = copy_workflow(tmp_path / "wf")
    config = work / "config" / "upstream.yaml"
    write_config(config, root)
    data = yaml.safe_load(config.read_text())
    data["families"]["epibert"]["archs"]["up_pretrain"][key] = value
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
    assert message in proc.stderr + proc.stdout
    if key == "num_heads":  # both values named
        assert "has 4" in proc.stderr + proc.stdout
    assert not (work / "results").exists()
