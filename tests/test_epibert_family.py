"""The EpiBERT family: geometry, rotary convention, upstream TFRecords, HDF5 conversion, TF == torch
augmentation on the same draws, the losses, Keras -> torch parity from ``model.h5`` and the checkpoint
folder for the pretraining and the fine-tuning architecture, training (fine-tuning from a pretrained model,
DDP over two CPU processes, bf16 mixed precision).

TensorFlow runs only in one module-scoped child process (``tests.tfside.run_tf``); this process imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from tests.tfside import run_tf
from tf2lightning.core.hdf5_store import read_all, split_indices
from tf2lightning.core.keras_h5 import read_keras_h5
from tf2lightning.core.parity import capture_activations, compare, parity_table
from tf2lightning.core.reference_file import read_reference
from tf2lightning.core.tfrecord import (
    encode_example,
    encode_tensor,
    iter_records,
    parse_example,
    parse_tensor,
    write_records,
)
from tf2lightning.core.torch_weights import load_mapped, target_spec
from tf2lightning.core.tsv import read_tsv
from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.epibert import data, model, weights
from tf2lightning.families.epibert.augment import augment
from tf2lightning.families.epibert.draws import draw, stack
from tf2lightning.families.epibert.geometry import geometry, rotary_table
from tf2lightning.families.epibert.loss import finetune_loss, poisson_multinomial
from tf2lightning.families.epibert.synthetic import COMPLEMENT, EXPRESSION, MOTIFS
from tf2lightning.run import Run

CONFIG: dict[str, Any] = {
    "family": "epibert",
    "dataset_name": "K562",
    "arch_name": "tiny",
    "dataset": {
        "n_train": 8,
        "n_val": 4,
        "n_test": 6,
        "input_length": 1024,
        "output_res": 32,
        "atac_bin": 4,
        "max_shift": 3,
        "crop": 2,
        "mask_size": 64,
        "atac_mask_dropout": 0.3,
        "n_motifs": 12,
    },
    "arch": {
        "filter_list_seq": [8, 8, 12, 16],
        "filter_list_atac": [8],
        "atac_stem_filters": 4,
        "atac_pool": 4,
        "num_heads": 2,
        "attention": "performer",
        "seed": 19,
        "num_layers": 2,
        "motif_units_fc": 8,
        "final_point_scale": 2,
        "dropout": 0.1,
        "pointwise_dropout": 0.05,
        "motif_dropout": 0.25,
        "bn_momentum": 0.9,
        "ffn_activation": "relu",
        "legacy_epochs": 1,
        "legacy_batch_size": 4,
        "legacy_lr": 1e-3,
    },
    "train": {"total_weight": 0.15, "batch_size": 4},
    "parity": {"n_probe": 3},
    "seed": 5,
}
RUN = Run(**CONFIG)
GEO = geometry(RUN)
FINETUNE = Run(**{**CONFIG, "arch_name": "tiny_ft", "arch": {**CONFIG["arch"], "mode": "finetune"}})

TF_CHILD = """
import dataclasses, json, sys
from pathlib import Path
import numpy as np
import tensorflow as tf
from tf2lightning.run import Run
from tf2lightning.families.epibert import legacy, tfdata
from tf2lightning.families.epibert.geometry import geometry
assert "torch" not in sys.modules, "the TF side imported torch"
run, root, finetune = Run(**json.loads(sys.argv[1])), Path(sys.argv[2]), Run(**json.loads(sys.argv[3]))
geo, rate = geometry(run), run.dataset["atac_mask_dropout"]
legacy.write_data(run, root / "data")
legacy.train_model(run, root / "data", root / "model")
legacy.reference(run, root / "model", root / "data", root / "reference.h5")
legacy.train_model(finetune, root / "data", root / "model_ft")
legacy.reference(finetune, root / "model_ft", root / "data", root / "reference_ft.h5")
draws = dict(np.load(root / "draws.npz"))
path = tfdata.record_path(root / "data", "test", run.dataset_name)
for name, switches in json.loads(sys.argv[4]).items():
    variant, out = dataclasses.replace(geo, **switches), {}
    for i, record in enumerate(tf.data.TFRecordDataset(str(path), compression_type="ZLIB")):
        one = {k: v[i] for k, v in draws.items()}
        for k, v in tfdata.augment(tfdata.parse(record, geo, rna=True), one, variant, rate).items():
            out.setdefault(k, []).append(v.numpy())
    np.savez(root / f"tf_augmented{name}.npz", **{k: np.stack(v) for k, v in out.items()})
loss_in = {k: tf.constant(v) for k, v in np.load(root / "loss_in.npz").items()}
losses = {
    "loss": legacy.poisson_multinomial(loss_in["target"], loss_in["pred"], 0.15),
    "batched": legacy.poisson_multinomial(loss_in["rna"], loss_in["tracks"][..., 1], 0.15),
    "finetune": legacy.training_loss(
        loss_in["tracks"], (loss_in["atac"], loss_in["mask"], loss_in["rna"]), 0.15, 0.1
    ),
}
assert "torch" not in sys.modules, "the TF side imported torch"
print(json.dumps({k: float(v) for k, v in losses.items()}))
"""


# upstream's switches, two variants of the geometry: noise in the mask (4 chunks of 64 ATAC bins here,
# upstream's 512 need 2,048 bins), log1p, no motif activity; then the random-input ablations
SWITCHED: dict[str, dict[str, Any]] = {
    "_noise": {"mask_noise": True, "scramble_bins": 64, "log_atac": True, "use_motif_activity": False},
    "_ablate": {"use_atac": False, "use_seq": False},
}
_LOSS_RNG = np.random.default_rng(3)
LOSS_INPUTS = {
    "target": _LOSS_RNG.poisson(3.0, 50).astype(np.float32),
    "pred": _LOSS_RNG.gamma(2.0, 1.5, 50).astype(np.float32),
    "tracks": _LOSS_RNG.gamma(2.0, 1.5, (3, 20, 2)).astype(np.float32),
    "atac": _LOSS_RNG.poisson(3.0, (3, 20)).astype(np.float32),
    "mask": (_LOSS_RNG.random((3, 20)) < 0.3).astype(np.float32),
    "rna": _LOSS_RNG.poisson(2.0, (3, 20)).astype(np.float32),
}


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("epibert")
    rng = np.random.default_rng(11)
    # training draws with upstream's corrupt rate (1 in 2 here) and motif noise, so both sides apply them
    # and the draws of every switch of upstream's parse functions (mask_noise, use_atac, use_seq)
    noisy = dataclasses.replace(
        GEO, corrupt_rate=2, motif_noise=1e-4, **SWITCHED["_noise"], **SWITCHED["_ablate"]
    )
    draws = stack([draw(rng, noisy, training=True) for _ in range(CONFIG["dataset"]["n_test"])])
    assert 0 < draws["corrupt"].sum() < len(draws["corrupt"]) and draws["motif_noise"].max() > 0
    np.savez(root / "draws.npz", **draws)
    np.savez(root / "loss_in.npz", **LOSS_INPUTS)
    variants = json.dumps({"": {}, **SWITCHED})
    out = run_tf(TF_CHILD, json.dumps(CONFIG), root, json.dumps(asdict(FINETUNE)), variants)
    data.convert(RUN, root / "data", root / "data.h5")
    return root, json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- geometry
def test_published_geometry() -> None:
    published = Run(
        family="epibert",
        dataset_name="K562",
        arch_name="published",
        dataset={
            **CONFIG["dataset"],
            "input_length": 524288,
            "output_res": 128,
            "mask_size": 1536,
            "n_motifs": 693,
        },
        arch={
            **CONFIG["arch"],
            "filter_list_seq": [512, 640, 640, 768, 896, 1024],
            "filter_list_atac": [32, 64],
        },
    )
    geo = geometry(published)
    assert (geo.n_tokens, geo.atac_length, geo.tiling, geo.output_length, geo.n_blocks) == (
        4096,
        131072,
        32,
        4092,
        341,
    )


def test_inconsistent_towers_are_a_config_error() -> None:
    bad = Run(**{**CONFIG, "arch": {**CONFIG["arch"], "filter_list_atac": [8, 8]}})
    with pytest.raises(ConfigError, match="ATAC tower"):
        geometry(bad)


# -------------------------------------------------------------------------------------------- rotary
def test_rotary_is_interleaved_and_relative() -> None:
    sin, cos = rotary_table(16, 8)
    x = torch.randn(16, 1, 8)
    rotated = x * torch.from_numpy(cos)[:, None] + model.rotate_every_two(x) * torch.from_numpy(sin)[:, None]
    # interleaved pairs (2i, 2i+1) are complex numbers multiplied by exp(i * pos * freq_i)
    as_complex = torch.view_as_complex(x.reshape(16, 1, 4, 2).contiguous())
    freq = 1.0 / 10000 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    phase = torch.polar(torch.ones(16, 4, dtype=torch.float64), torch.arange(16)[:, None] * freq)
    product = as_complex.to(torch.complex128) * phase[:, None]
    expected = torch.view_as_real(product.to(torch.complex64)).reshape(16, 1, 8)
    torch.testing.assert_close(rotated, expected, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------- the data
def test_tfrecords_are_upstream_format(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    root, _ = legacy_dir
    path = root / "data" / "test" / "K562.tfr"
    head = path.read_bytes()[:2]
    assert head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0, "not a zlib stream"
    records = list(iter_records(path, compression="ZLIB"))
    assert len(records) == CONFIG["dataset"]["n_test"]
    example = parse_example(records[0])
    assert set(example) == {"sequence", "atac", "peaks", "peaks_center", "interval", "motif_activity", "rna"}
    assert len(example["sequence"][0]) == GEO.stored_length
    assert parse_tensor(example["rna"][0]).dtype == np.float16
    assert parse_tensor(example["rna"][0]).shape == (GEO.n_tokens, 1)
    assert parse_tensor(example["atac"][0]).dtype == np.float16
    assert parse_tensor(example["atac"][0]).shape == (GEO.atac_length, 1)
    assert parse_tensor(example["motif_activity"][0]).dtype == np.float16
    assert parse_tensor(example["peaks_center"][0]).dtype == np.int32


def test_hdf5_layout(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    root, _ = legacy_dir
    with h5py.File(root / "data.h5") as h5:
        assert h5["sequence"].dtype == np.uint8 and h5["sequence"].chunks == (1, GEO.stored_length)
        assert h5["atac"].dtype == np.float16 and h5["atac"].chunks == (1, GEO.atac_length)
        assert "32008" in h5["atac"]._filters  # Bitshuffle
        assert h5["rna"].dtype == np.float16 and h5["rna"].chunks == (1, GEO.n_tokens)
    sizes = {k: len(v) for k, v in split_indices(root / "data.h5").items()}
    assert sizes == {"train": 8, "val": 4, "test": 6}
    codes = read_all(root / "data.h5", ["sequence"])["sequence"]
    assert codes.max() <= 4 and (codes < 4).mean() > 0.99


def test_bad_record_names_file_and_record(tmp_path: Path) -> None:
    good = {"sequence": b"A" * GEO.stored_length, "interval": b"chr1:0-1"}
    tensors = {
        "atac": np.zeros((GEO.atac_length, 1), np.float16),
        "peaks": np.zeros(GEO.n_tokens, np.int32),
        "peaks_center": np.zeros(GEO.n_tokens, np.int32),
        "motif_activity": np.zeros(GEO.n_motifs, np.float16),
    }
    for split in ("train", "valid", "test"):  # the first record fixes the dtypes: valid/ stores float32
        atac = tensors["atac"].astype(np.float32 if split == "valid" else np.float16)
        record = encode_example(good | {k: [encode_tensor(v)] for k, v in (tensors | {"atac": atac}).items()})
        write_records(tmp_path / split / "K562.tfr", [record], "ZLIB")
    with pytest.raises(FormatError, match=r"valid/K562.tfr: record 0: feature 'atac': expected a float16"):
        data.convert(RUN, tmp_path, tmp_path / "data.h5")
    assert not (tmp_path / "data.h5").exists()


def test_torch_augmentation_equals_tf_on_the_same_draws(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    root, _ = legacy_dir
    tf_out = dict(np.load(root / "tf_augmented.npz"))
    draws = dict(np.load(root / "draws.npz"))
    rows = read_all(root / "data.h5")
    test = split_indices(root / "data.h5")["test"]
    rate = CONFIG["dataset"]["atac_mask_dropout"]
    assert draws["rev_comp"].min() == 0 and draws["rev_comp"].max() == 1, "cover both strands"
    for name, switches in {"": {}, **SWITCHED}.items():
        geo, tf_out = dataclasses.replace(GEO, **switches), dict(np.load(root / f"tf_augmented{name}.npz"))
        for i, row in enumerate(test):
            example = {k: rows[k][row] for k in ("sequence", "atac", "peaks_center", "motif_activity", "rna")}
            out = augment(example, {k: v[i] for k, v in draws.items()}, geo, rate)
            np.testing.assert_array_equal(out["sequence"].numpy(), tf_out["sequence"][i], err_msg=name)
            np.testing.assert_array_equal(out["mask"].numpy(), tf_out["mask"][i], err_msg=name)
            for key in ("atac", "target", "motif", "rna"):
                np.testing.assert_allclose(
                    out[key].numpy(), tf_out[key][i], rtol=1e-6, atol=1e-6, err_msg=f"{name} {key}"
                )
            assert out["mask"].sum() > 0
    plain, noise, ablate = (dict(np.load(root / f"tf_augmented{n}.npz")) for n in ("", "_noise", "_ablate"))
    masked, kept = plain["atac"] == 0, (plain["atac"] > 0) & (plain["atac"] < 150)  # (noise makes kept > 0)
    assert not noise["motif"].any() and noise["atac"][masked].any()  # masked bins carry shuffled signal
    np.testing.assert_allclose(noise["atac"][kept], np.log1p(plain["atac"][kept]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ablate["atac"], draws["random_atac"])
    np.testing.assert_array_equal(ablate["sequence"], draws["random_codes"])


def test_losses_match_the_source(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    _, result = legacy_dir
    t = {k: torch.from_numpy(v) for k, v in LOSS_INPUTS.items()}
    ours = {
        "loss": poisson_multinomial(t["target"], t["pred"], 0.15),
        "batched": poisson_multinomial(t["rna"], t["tracks"][..., 1], 0.15),
        "finetune": finetune_loss(t["tracks"], t["atac"], t["mask"], t["rna"], 0.15, 0.1)[0],
    }
    for key, value in ours.items():
        assert abs(float(value) - result[key]) < 1e-5 * max(1.0, abs(result[key])), key
    # per example, averaged over the batch (the source's reduce_mean over its batch axis)
    rows = [poisson_multinomial(t["rna"][i], t["tracks"][i, :, 1], 0.15) for i in range(3)]
    assert abs(float(ours["batched"]) - float(torch.stack(rows).mean())) < 1e-6


def test_expression_comes_from_promoter_motif_sites(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    """The synthetic fine-tuning target is learnable: counts sit on the tokens of expressed motifs."""
    root, _ = legacy_dir
    rows = read_all(root / "data.h5", ["sequence", "rna"])
    expressed = [MOTIFS[j].encode() for j, gain in enumerate(EXPRESSION) if gain > 0]
    expressed += [m[::-1].translate(COMPLEMENT) for m in expressed]
    high, low = [], []
    for codes, rna in zip(rows["sequence"], rows["rna"].astype(np.float32), strict=True):
        text = np.frombuffer(b"ACGTN", np.uint8)[codes[: GEO.input_length]].tobytes()
        res = GEO.output_res
        windows = [text[max(t * res - 8, 0) : (t + 1) * res + 8] for t in range(GEO.n_tokens)]
        has_site = np.array([any(m in w for m in expressed) for w in windows])
        high += list(rna[has_site])
        low += list(rna[~has_site])
    assert len(high) > 10 and np.mean(high) > 10 * np.mean(low)


# ------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("source", ["h5", "ckpt"])
@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_parity_every_layer(legacy_dir: tuple[Path, dict[str, Any]], source: str, mode: str) -> None:
    root, _ = legacy_dir
    run, suffix = (RUN, "") if mode == "pretrain" else (FINETUNE, "_ft")
    model_dir = root / f"model{suffix}"
    # the legacy model directory is a checkpoint folder as upstream's (the workflow's source), plus model.h5
    legacy = read_keras_h5(model_dir / "model.h5") if source == "h5" else weights.read_source(run, model_dir)
    port = model.build(run)
    load_mapped(port, weights.weight_map(run).apply(legacy, target_spec(port)))
    reference = read_reference(root / f"reference{suffix}.h5")
    table = parity_table(model.parity_layers(run))
    outputs, activations = capture_activations(
        port, {k: v.torch_path for k, v in table.items()}, model.parity_inputs(reference.inputs)
    )
    named = {name: fn(outputs) for name, fn in model.parity_outputs(run).items()}
    report = compare(reference, named, activations, table, atol=1e-5, rtol=0)
    assert len([r for r in report.rows if r.kind == "layer"]) == len(reference.layers) > 40
    assert list(reference.outputs) == (["profile"] if mode == "pretrain" else ["tracks"])
    if mode == "finetune":  # both heads compared, layer by layer
        assert {"rna_head_conv", "rna_head_softplus", "head_softplus"} <= set(reference.layers)
        assert reference.outputs["tracks"].shape == (3, GEO.output_length, 2)
    report.raise_for_failures()


# ----------------------------------------------------------------------------------------- training
def test_one_lightning_step_learns(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    from tf2lightning.families.epibert.lit import make_module

    root, _ = legacy_dir
    dm = data.make_datamodule(RUN, root / "data.h5")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    module = make_module(RUN, model.build(RUN))
    losses = _losses_of_three_steps(module, batch)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def _losses_of_three_steps(module: Any, batch: dict[str, torch.Tensor]) -> list[float]:
    """Three optimizer steps of ``module`` on ``batch``, outside a Trainer; the loss of each, every one
    with the same dropout masks (so the losses differ by the steps alone)."""
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(3):
        torch.manual_seed(0)
        loss = module.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def test_torch_side_never_imported_tensorflow() -> None:
    assert "tensorflow" not in sys.modules


def _finetune_batch(root: Path) -> dict[str, torch.Tensor]:
    dm = data.make_datamodule(FINETUNE, root / "data.h5")
    dm.setup()
    return next(iter(dm.train_dataloader()))


def test_one_finetuning_step_learns(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    from tf2lightning.families.epibert.lit import ExpressionFinetuning, make_module

    root, _ = legacy_dir
    batch = _finetune_batch(root)
    assert batch["rna"].shape == (4, GEO.output_length) and batch["rna"].max() > 0.5
    module = make_module(FINETUNE, model.build(FINETUNE))
    assert isinstance(module, ExpressionFinetuning)
    losses = _losses_of_three_steps(module, batch)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_finetuning_starts_from_the_pretrained_model(
    legacy_dir: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from tf2lightning.families.epibert.lit import make_module
    from tf2lightning.stages.train import save_model

    pretrained = model.build(RUN)
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(0.5)
    save_model(pretrained, RUN, [], tmp_path / "model.pt")
    torch.manual_seed(0)
    fresh = model.build(FINETUNE)
    torch.manual_seed(0)
    port = model.build(FINETUNE)
    with torch.no_grad():
        port.rna_head_dense.weight.fill_(7.0)  # e.g. a converted head: replaced by a fresh one
    make_module(FINETUNE, port, pretrained=tmp_path / "model.pt")
    ours = port.state_dict()
    for key, value in pretrained.state_dict().items():
        torch.testing.assert_close(ours[key], value, msg=key)
    head = [k for k in ours if k.startswith("rna_head")]
    assert head and not any(k in pretrained.state_dict() for k in head)
    assert float(port.rna_head_dense.weight.abs().max()) < 7.0
    assert not torch.equal(port.rna_head.conv.weight, fresh.rna_head.conv.weight)  # re-drawn, not kept

    other = Run(**{**CONFIG, "arch": {**CONFIG["arch"], "motif_units_fc": 16}})
    save_model(model.build(other), other, [], tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="does not fit the fine-tuning model"):
        make_module(FINETUNE, model.build(FINETUNE), pretrained=tmp_path / "other.pt")


def test_finetune_needs_the_expression_target(tmp_path: Path) -> None:
    from tf2lightning.core.hdf5_store import Field, H5Writer

    fields = {"sequence": Field(np.uint8, (GEO.stored_length,)), "split": Field(np.uint8)}
    with H5Writer(tmp_path / "data.h5", fields, {"splits": ["train", "val", "test"]}) as out:
        out.append(
            {"sequence": np.zeros((3, GEO.stored_length), np.uint8), "split": np.arange(3, dtype=np.uint8)}
        )
    dm = data.make_datamodule(FINETUNE, tmp_path / "data.h5")
    with pytest.raises(FormatError, match="no 'rna' dataset"):
        dm.setup()


def test_legacy_finetune_names_records_without_the_expression_target(tmp_path: Path) -> None:
    """The TF side's fine-tuning refuses pretraining-only records up front, naming the file."""
    records = tmp_path / "train" / "K562.tfr"
    records.parent.mkdir()
    write_records(records, [encode_example({"sequence": [b"ACGT"]})], "ZLIB")
    out = run_tf(
        """
        import json, sys
        from tf2lightning.errors import FormatError
        from tf2lightning.families.epibert import legacy
        from tf2lightning.run import Run
        try:
            legacy.train_model(Run(**json.loads(sys.argv[1])), sys.argv[2], sys.argv[3])
        except FormatError as error:
            print(error)
        """,
        json.dumps(asdict(FINETUNE)),
        tmp_path,
        tmp_path / "model",
    )
    assert f"{records}: record 0 has no 'rna' feature" in out


def test_the_finetune_run_depends_on_the_pretrain_model(tmp_path: Path) -> None:
    """The DAG edge: the finetune arch's train job needs pretrain's train/model.pt (``init_from``)."""
    from tests.workflow_runner import REPO, copy_workflow, snakemake
    from tf2lightning.families.epibert.modes import pretrained_input

    assert pretrained_input(FINETUNE) == {}  # no init_from: nothing extra
    with_init = Run(**{**asdict(FINETUNE), "arch": {**FINETUNE.arch, "init_from": "pretrain"}})
    assert pretrained_input(with_init) == {"pretrained": "results/{family}/{dataset}_pretrain/train/model.pt"}
    assert pretrained_input(RUN) == {}
    workdir = copy_workflow(tmp_path)
    target = "results/epibert/K562_finetune/train/model.pt"
    proc = snakemake(workdir, "-n", target, "--configfile", REPO / "tests/configs/epibert.yaml")
    trains = {
        job.split("output: ")[1].split(",")[0]: job.split("input: ")[1].split("\n")[0]
        for job in proc.stdout.split("\nrule train:")[1:]
    }
    pretrained = "results/epibert/K562_pretrain/train/model.pt"
    assert set(trains) == {target, pretrained} and pretrained in trains[target].split(", ")


# ------------------------------------------------------------------------- trainer: bf16, clipping, DDP
def _tiny_train_run(**train: Any) -> Run:
    return Run(**{**CONFIG, "train": {**CONFIG["train"], "init": "scratch", "max_epochs": 1, **train}})


def test_bf16_mixed_precision_trains_with_clipping_on_cpu(
    legacy_dir: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from lightning.pytorch.callbacks import Callback

    from tf2lightning.families.epibert.lit import make_module
    from tf2lightning.stages.train import make_trainer

    seen: set[torch.dtype] = set()

    class Dtypes(Callback):
        def on_train_start(self, trainer: Any, module: Any) -> None:
            module.model.projection.register_forward_hook(lambda m, i, o: seen.add(o.dtype))

    root, _ = legacy_dir
    run = _tiny_train_run(precision="bf16-mixed", gradient_clip=0.5, accelerator="cpu")
    net = model.build(run)
    before = [p.detach().clone() for p in net.parameters()]
    trainer = make_trainer(run, tmp_path, tmp_path / "ckpt", [Dtypes()])
    assert trainer.precision == "bf16-mixed" and trainer.gradient_clip_val == 0.5
    trainer.fit(make_module(run, net), datamodule=data.make_datamodule(run, root / "data.h5"))
    assert trainer.global_step == 2 and seen == {torch.bfloat16}
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert np.isfinite(float(trainer.callback_metrics["train_loss"]))


DDP_SCRIPT = """
import json, logging, sys
from tf2lightning.run import Run
from tf2lightning.stages.train import train
logging.basicConfig(level=logging.INFO)
run = Run(**json.loads(sys.argv[1]))
train(run, sys.argv[2], "unused", sys.argv[3] + "/model.pt", sys.argv[3] + "/history.tsv")
"""


# what a Snakemake Slurm job step looks like to the training process: one task (``srun -n1``)
SLURM_STEP = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "train",
    "SLURM_NTASKS": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NNODES": "1",
    "SLURM_NODELIST": "localhost",
}


@pytest.mark.parametrize("where", ["local", "slurm_step"])
def test_ddp_over_two_cpu_processes(
    legacy_dir: tuple[Path, dict[str, Any]], tmp_path: Path, where: str
) -> None:
    """``strategy: ddp`` with two CPU processes (gloo): each rank sees half of the 8 training examples
    (one batch of 4, not two), rank 0 writes the outputs. Lightning starts rank 1 by re-running the
    script, as it does with the workflow's job scripts; inside a one-task Slurm step too."""
    import os
    import subprocess

    root, _ = legacy_dir
    run = _tiny_train_run(strategy="ddp", devices=2, accelerator="cpu", max_epochs=2)
    script = tmp_path / "train_ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if where == "slurm_step":
        env |= SLURM_STEP
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(asdict(run)), str(root / "data.h5"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "distributed_backend=gloo" in proc.stderr and "Starting with 2 processes" in proc.stderr
    if where == "slurm_step":
        assert "auto-requeue on SIGURG (SlurmStepEnvironment)" in proc.stderr
    history = read_tsv(tmp_path / "out" / "history.tsv")
    assert [float(row["step"]) for row in history] == [1.0, 2.0]
    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert len(saved["history"]) == 2 and np.isfinite(float(history[-1]["val_loss"]))


def test_training_throughput_counts_tokens_and_flops() -> None:
    from tf2lightning.families.epibert.published import published_run
    from tf2lightning.families.epibert.throughput import training_throughput

    out = training_throughput(FINETUNE, batch_size=2, device="cpu", steps=2, warmup=1)
    assert out["steps"] == 2 and out["precision"] == "32-true" and out["device"] == "cpu"
    assert out["tokens_per_s"] == pytest.approx(out["examples_per_s"] * GEO.n_tokens)
    assert out["flops_per_step"] > 0 and out["mfu"] is None  # no peak known for a CPU
    assert out["achieved_tflops"] == pytest.approx(out["flops_per_step"] / out["step_s_median"] / 1e12)
    published = geometry(published_run("finetune"))
    assert (published.n_tokens, published.output_length, published.atac_length) == (4096, 4092, 131072)


# -------------------------------------------------------------------------------------------- benchmark
def test_training_and_data_benchmarks_of_both_sides(
    legacy_dir: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from tests.bench_checks import check_training_and_data_benchmarks
    from tf2lightning.stages.weights import convert_weights

    root, _ = legacy_dir
    convert_weights(FINETUNE, root / "model_ft", "ckpt", tmp_path / "weights.safetensors")
    paths = {
        "model_dir": root / "model_ft",
        "h5": root / "data.h5",
        "weights": tmp_path / "weights.safetensors",
        "legacy_dir": root / "data",
    }
    check_training_and_data_benchmarks(FINETUNE, paths, tmp_path / "bench", 4, CONFIG["dataset"]["n_train"])


TF_AUGMENT_BATCH = """
import json, sys
from pathlib import Path
import numpy as np
import tensorflow as tf
from tf2lightning.run import Run
from tf2lightning.families.epibert import tfdata
from tf2lightning.families.epibert.bench import examples
from tf2lightning.families.epibert.geometry import geometry
run, root = Run(**json.loads(sys.argv[1])), Path(sys.argv[2])
arrays = dict(np.load(root / "arrays.npz"))
geo, rate = geometry(run), run.dataset["atac_mask_dropout"]
out = [
    tfdata.augment({k: tf.constant(v) for k, v in row.items()}, draws, geo, rate)
    for row, draws in examples(arrays)
]
np.savez(root / "tf_batch.npz", **{k: np.stack([o[k].numpy() for o in out]) for k in out[0]})
assert "torch" not in sys.modules, "the TF side imported torch"
"""


def test_benchmark_batch_is_augmented_alike_on_both_sides(
    legacy_dir: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Both sides train on the same examples: the stored rows of data.h5 with the batch's draws, through
    ``tfdata.augment`` in TF and the DataModule's ``augment`` in torch."""
    from tf2lightning.families.epibert.bench import torch_batch, train_batch

    root, _ = legacy_dir
    arrays = train_batch(FINETUNE, root / "data.h5", 3)
    first = split_indices(root / "data.h5")["train"][:3]
    np.testing.assert_array_equal(arrays["sequence"], read_all(root / "data.h5")["sequence"][first])
    np.savez(tmp_path / "arrays.npz", **arrays)
    run_tf(TF_AUGMENT_BATCH, json.dumps(asdict(FINETUNE)), tmp_path)
    tf_batch = dict(np.load(tmp_path / "tf_batch.npz"))
    batch = torch_batch(FINETUNE, arrays)
    assert set(batch) == set(tf_batch) == {"sequence", "atac", "target", "mask", "motif", "rna"}
    for key, value in tf_batch.items():
        torch.testing.assert_close(
            batch[key], torch.from_numpy(value).to(batch[key].dtype), atol=1e-5, rtol=1e-6
        )


@pytest.mark.parametrize("run", [RUN, FINETUNE], ids=["pretrain", "finetune"])
def test_inference_benchmark_compares_every_output_with_tf(run: Run) -> None:
    """The port returns upstream's outputs (a tuple when fine-tuning); the benchmark's error vs the Keras
    model's output (``profile`` or ``tracks``) takes all of them, eager or as ONNX Runtime's list."""
    from tf2lightning.bench.torch_side import error_vs_tf

    port = model.build(run).eval()
    with torch.no_grad():
        out = port(*model.example_inputs(run))
    name = "tracks" if isinstance(out, tuple) else "profile"
    stacked = torch.cat(out, -1) if isinstance(out, tuple) else out
    tf_outputs = {name: stacked.numpy() + 0.5}
    arrays = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    for given in (out, arrays):
        assert error_vs_tf(run, given, tf_outputs) == pytest.approx(0.5, abs=1e-6)
