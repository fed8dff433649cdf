"""The Clair3 family: labels, synthetic sites, ``.bin`` files, checkpoint mapping, parity at depths 55 and
89 (TF 'same' padding), Lookahead, and streaming calls.

TensorFlow runs only in one module-scoped child process (``tests.tfside.run_tf``) that writes tiny
``.bin`` datasets, TF checkpoints of untrained networks (BatchNorm statistics randomised) and their
reference activations; this process imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from tests.tfside import run_tf
from tf2lightning.core.hdf5_store import read_all
from tf2lightning.core.parity import capture_activations, compare, parity_table
from tf2lightning.core.reference_file import read_reference
from tf2lightning.core.torch_weights import load_mapped, target_spec
from tf2lightning.errors import ConfigError, FormatError, MappingError
from tf2lightning.families.clair3 import call as clair3_call
from tf2lightning.families.clair3 import data, model, weights
from tf2lightning.families.clair3.bin_format import chunk_batches, read_bin, write_bin
from tf2lightning.families.clair3.evaluate import predict_heads
from tf2lightning.families.clair3.labels import GT21, LABEL_WIDTH, label_classes, one_hot_labels
from tf2lightning.families.clair3.lookahead import Lookahead
from tf2lightning.families.clair3.platform import Platform
from tf2lightning.families.clair3.synthetic import generate_sites
from tf2lightning.run import Run
from tf2lightning.stages.train import save_model

SIZES = {"n_train": 12, "n_val": 4, "n_test": 6}
DATASETS = {"hifi": {"depth": 55, **SIZES}, "ont": {"depth": 89, **SIZES}}
ARCHS = {
    "P": {"network": "P", "lstm1_units": 5, "lstm2_units": 4, "l4_units": 12, "l5_units": 6},
    "F": {"network": "F", "conv_filters": [4, 6, 8], "l4_units": 12, "l5_units": 6},
}
RUNS = (("hifi", "P"), ("hifi", "F"), ("ont", "F"))
ATOL = 1e-5


def make_run(dataset: str, arch: str) -> Run:
    return Run("clair3", dataset, arch, DATASETS[dataset], ARCHS[arch], parity={"n_probe": 6}, seed=5)


TF_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from tf2lightning.run import Run
from tf2lightning.families.clair3 import legacy
assert "torch" not in sys.modules, "the TF side imported torch"
root, datasets, archs, runs = Path(sys.argv[1]), *(json.loads(a) for a in sys.argv[2:5])
for name, cfg in datasets.items():
    legacy.write_data(Run("clair3", name, "", cfg, seed=5), root / name / "data")
for dataset, arch in runs:
    run = Run("clair3", dataset, arch, datasets[dataset], archs[arch], parity={"n_probe": 6}, seed=5)
    model = legacy.build_keras_model(run)
    rng = np.random.default_rng(0)
    for var in model.non_trainable_variables:  # BatchNorm moving statistics, not 0/1
        var.assign(rng.uniform(0.5, 1.5, var.shape).astype("float32") if "variance" in var.name
                   else rng.normal(0, 0.3, var.shape).astype("float32"))
    out = root / f"{dataset}_{arch}"
    legacy.save_checkpoint(model, out)
    legacy.reference(run, out, root / dataset / "data", out / "reference.h5")
assert "torch" not in sys.modules, "the TF side imported torch"
"""


@pytest.fixture(scope="module")
def legacy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clair3")
    run_tf(TF_CHILD, root, json.dumps(DATASETS), json.dumps(ARCHS), json.dumps(RUNS))
    return root


def converted_port(root: Path, dataset: str, arch: str) -> torch.nn.Module:
    run = make_run(dataset, arch)
    port = model.build(run)
    legacy = weights.read_source(run, root / f"{dataset}_{arch}")
    return load_mapped(port, weights.weight_map(run).apply(legacy, target_spec(port))).eval()


def parity_report(root: Path, dataset: str, arch: str, port: torch.nn.Module | None = None) -> Any:
    run = make_run(dataset, arch)
    port = port or converted_port(root, dataset, arch)
    reference = read_reference(root / f"{dataset}_{arch}" / "reference.h5")
    table = parity_table(model.parity_layers(run))
    outputs, acts = capture_activations(
        port, {k: v.torch_path for k, v in table.items()}, model.parity_inputs(reference.inputs)
    )
    named = {name: fn(outputs) for name, fn in model.PARITY_OUTPUTS.items()}
    return compare(reference, named, acts, table, atol=ATOL, rtol=0.0)


# ------------------------------------------------------------------------------------- labels and data
def test_labels_round_trip_and_reject_bad_rows() -> None:
    classes = np.array([[0, 0, 16, 16], [20, 2, 0, 32], [GT21.index("ADel"), 2, 13, 16]])
    rows = one_hot_labels(classes)
    assert rows.dtype == np.int8 and rows.shape == (3, LABEL_WIDTH)
    assert np.array_equal(label_classes(rows), classes)
    rows[1, 21:24] = 0
    with pytest.raises(FormatError, match=r"x\.bin: row 1: the genotype block is not one-hot"):
        label_classes(rows, "x.bin")


def test_synthetic_sites_are_deterministic_and_consistent() -> None:
    platform = Platform("hifi", 55)
    a = generate_sites(40, platform, np.random.default_rng(1))
    b = generate_sites(40, platform, np.random.default_rng(1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["full_alignment"].shape == (40, 55, 33, 8) and a["pileup"].shape == (40, 33, 18)
    classes = label_classes(a["label"])
    homo_ref = classes[:, 1] == 0
    assert homo_ref.any() and np.all(classes[homo_ref][:, 2:] == 16)  # no indel on homozygous-reference sites
    assert np.all(np.isin(classes[homo_ref, 0], [GT21.index(p) for p in ("AA", "CC", "GG", "TT")]))
    coverage = (a["full_alignment"][:, :, 16, 0] != 0).sum(1)  # reads cover the candidate
    assert np.array_equal(coverage, a["pileup"][:, 16, [0, 1, 2, 3, 6, 9, 10, 11, 12, 15]].sum(1))


def write_bin_folder(root: Path, platform: Platform, chromosomes: tuple[str, ...]) -> None:
    """Upstream's layout: pileup/ and full_alignment/ bins per chromosome, different sites in each, pileup
    counts above int8 (int32, as upstream stores them)."""
    for index, chrom in enumerate(chromosomes):
        for kind, seed in (("pileup", index), ("full_alignment", 100 + index)):
            sites = generate_sites(5 + index, platform, np.random.default_rng(seed), chrom)
            matrix = sites[kind].astype(np.int32) + (100 if kind == "pileup" else 0)
            arrays = {"position_matrix": matrix, **{k: sites[k] for k in ("label", "position", "alt_info")}}
            (root / kind).mkdir(parents=True, exist_ok=True)
            write_bin(root / kind / f"bin_s_60_{chrom}", arrays)


def test_bin_folder_round_trips_bit_identical(tmp_path: Path) -> None:
    platform = Platform("hifi", 55)
    write_bin_folder(tmp_path / "bins", platform, ("chr1", "chr20", "chr21"))
    run = Run("clair3", "hifi", "", {"depth": 55})
    data.convert(run, tmp_path / "bins", tmp_path / "data.h5")
    with h5py.File(tmp_path / "data.h5") as h5:
        assert h5["full_alignment/position_matrix"].chunks[0] == data.CHUNK_ROWS
        assert h5["pileup/position_matrix"].dtype == np.int32 and h5["pileup/position_matrix"][()].max() > 127
    for kind in ("pileup", "full_alignment"):
        keys = [f"{kind}/{k}" for k in ("position_matrix", "label", "position", "alt_info", "split", "file")]
        table = {k.split("/")[1]: v for k, v in read_all(tmp_path / "data.h5", keys).items()}
        for chrom, split_id in (("chr1", 0), ("chr20", 1), ("chr21", 2)):
            rows = table["file"] == f"bin_s_60_{chrom}".encode()
            assert np.all(table["split"][rows] == split_id)  # the default split: chr20 val, chr21 test
            original = read_bin(tmp_path / "bins" / kind / f"bin_s_60_{chrom}")
            for key in original:
                assert np.array_equal(original[key], table[key][rows])
            write_bin(tmp_path / "back", {k: table[k][rows] for k in original})  # and back to a bin
            again = read_bin(tmp_path / "back")
            for key, values in original.items():  # strings: the table's width is the widest file's
                assert np.array_equal(again[key], values)
                assert again[key].dtype == values.dtype or values.dtype.kind == "S"


def test_split_by_fraction_is_seeded_and_sized(tmp_path: Path) -> None:
    write_bin_folder(tmp_path / "bins", Platform("hifi", 55), ("chr1", "chr2"))  # 5 + 6 sites per network
    split = {"by": "fraction", "val_fraction": 0.2, "test_fraction": 0.3, "seed": 4}
    run = Run("clair3", "hifi", "", {"depth": 55, "split": split})
    data.convert(run, tmp_path / "bins", tmp_path / "a.h5")
    data.convert(run, tmp_path / "bins", tmp_path / "b.h5")
    codes = read_all(tmp_path / "a.h5", ["pileup/split"])["pileup/split"]
    assert np.bincount(codes, minlength=3).tolist() == [5, 2, 4]  # per file: 5 sites -> 1, 2; 6 -> 1, 2
    assert np.array_equal(codes, read_all(tmp_path / "b.h5", ["pileup/split"])["pileup/split"])
    with pytest.raises(ConfigError, match=r"split: \['chr2'\] is in both val and test"):
        data.convert(Run("clair3", "hifi", "", {"depth": 55, "split": {"val": ["chr2"], "test": ["chr2"]}}),
                     tmp_path / "bins", tmp_path / "c.h5")  # fmt: skip


@pytest.mark.parametrize(
    ("n", "batch", "chunk", "width"),
    [(2000, 400, 200, 200), (12, 4, 200, 4), (1000, 300, 200, 100), (800, 32, 200, 32)],
)
def test_bin_reader_batches_are_shuffled_chunks_of_consecutive_rows(
    n: int, batch: int, chunk: int, width: int
) -> None:
    rng = np.random.default_rng(0)
    passes = [chunk_batches(n, batch, rng, chunk) for _ in range(2)]
    for batches in passes:
        rows = [list(range(n))[s] for parts in batches for s in parts]
        assert all(len(r) == width and r == list(range(r[0], r[0] + width)) for r in rows)
        assert all(sum(s.stop - s.start for s in parts) == batch for parts in batches)
        flat = [i for r in rows for i in r]
        assert len(flat) == len(set(flat)) and max(flat) < n  # no row twice in a pass
        assert len(batches) == ((n - width) // width) // (batch // width)
    assert passes[0] != passes[1]  # a fresh order (and start offset) every pass
    assert chunk_batches(5, 8, rng, chunk) == []


def test_bad_bin_names_the_file_and_array(tmp_path: Path) -> None:
    sites = generate_sites(3, Platform("hifi", 55), np.random.default_rng(0))
    path = tmp_path / "bad.bin"
    write_bin(
        path,
        {
            "position_matrix": sites["pileup"].astype(np.float32),
            **{k: sites[k] for k in ("label", "position", "alt_info")},
        },
    )
    with pytest.raises(FormatError, match=r"bad\.bin: array 'position_matrix' has dtype float32"):
        read_bin(path)
    with h5py.File(path, "a") as h5:
        del h5["alt_info"]
    with pytest.raises(FormatError, match=r"bad\.bin: missing array 'alt_info'"):
        read_bin(path)


def test_a_batch_of_sites_names_the_site_with_a_bad_label(tmp_path: Path) -> None:
    from tf2lightning.families.clair3.datamodule import BinSites

    sites = generate_sites(4, Platform("hifi", 55), np.random.default_rng(0))
    label = sites["label"].copy()
    label[2, :3] = 1  # two gt21 classes at once
    arrays = {
        "position_matrix": sites["pileup"],
        "label": label,
        **{k: sites[k] for k in ("position", "alt_info")},
    }
    write_bin(tmp_path / "x.bin", arrays)
    dataset = BinSites(tmp_path / "x.bin")
    batch = dataset.__getitems__([0, 1, 3])
    assert [int(b["y"][0]) for b in batch] == label_classes(sites["label"][[0, 1, 3]])[:, 0].tolist()
    with pytest.raises(FormatError, match=r"x\.bin: site 2: .*gt21 block is not one-hot"):
        dataset.__getitems__([1, 2, 3])


# ------------------------------------------------------------------------------------------------ port
@pytest.mark.parametrize(
    ("size", "expected"), [(55, (1, 1)), (28, (0, 1)), (14, (0, 1)), (89, (1, 1)), (45, (1, 1)), (23, (1, 1))]
)
def test_same_padding_puts_the_extra_after(size: int, expected: tuple[int, int]) -> None:
    assert model.same_padding(size, 3, 2) == expected


@pytest.mark.parametrize(("dataset", "arch"), RUNS)
def test_parity_outputs_and_layers(legacy_root: Path, dataset: str, arch: str) -> None:
    report = parity_report(legacy_root, dataset, arch)
    assert report.ok and report.layers_ok, report.summary()
    heads = [r for r in report.rows if r.kind == "output"]
    assert [r.legacy_name for r in heads] == ["gt21", "genotype", "indel_length_1", "indel_length_2"]
    assert max(r.max_abs_err for r in report.rows) <= ATOL


def test_symmetric_conv_padding_fails_at_depth_55_only(
    legacy_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def symmetric(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:  # the torch 'padding=1' habit
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, padding=1)

    monkeypatch.setattr(model.SameConv2d, "forward", symmetric)
    assert parity_report(legacy_root, "ont", "F").ok  # depth 89: every conv stage pads symmetrically anyway
    wrong = parity_report(legacy_root, "hifi", "F")
    assert not wrong.ok and wrong.first_failing_layer is not None
    assert wrong.first_failing_layer.legacy_name == "conv3"  # 28 rows -> 14: the first odd padding


def test_conversion_errors_name_the_variable(legacy_root: Path) -> None:
    run = make_run("hifi", "F")
    port = model.build(run)
    legacy = weights.read_source(run, legacy_root / "hifi_F")
    table = weights.weight_map(run)
    broken = {k: v for k, v in legacy.items() if k != "res_block2/layer_with_weights-0/bn1/moving_variance"}
    with pytest.raises(MappingError, match=r"res_block2\.0\.bn1\.running_var"):
        table.apply(broken, target_spec(port))
    broken = {**legacy, "conv5/conv/kernel": legacy["conv5/conv/kernel"][..., :-1]}
    with pytest.raises(MappingError, match=r"conv5\.conv\.weight: expected \(8, 6, 3, 3\)"):
        table.apply(broken, target_spec(port))
    with pytest.raises(MappingError, match=r"(?s)unused sources.*L6/kernel"):
        table.apply({**legacy, "L6/kernel": np.zeros((2, 2), np.float32)}, target_spec(port))


def test_export_inputs_and_torchscript_match_eager(legacy_root: Path) -> None:
    port = converted_port(legacy_root, "hifi", "F")
    inputs = model.example_inputs(make_run("hifi", "F"))
    traced = torch.jit.trace(port, inputs)
    for got, want in zip(traced(*inputs), port(*inputs), strict=True):
        assert torch.allclose(got, want, atol=1e-6)


# ------------------------------------------------------------------------------------ training, calling
def test_lookahead_interpolates_every_k_steps() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    inner = torch.optim.SGD([weight], lr=1.0)
    opt = Lookahead(inner, k=2, alpha=0.5)
    for _ in range(2):
        opt.zero_grad()
        (-weight).sum().backward()  # gradient -1: each SGD step adds 1
        opt.step()
    assert weight.item() == pytest.approx(1.0)  # slow 0 -> 0 + 0.5 * (2 - 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.1)
    assert inner.param_groups[0]["lr"] == pytest.approx(0.1) and scheduler.get_last_lr() == [
        pytest.approx(0.1)
    ]


def test_streaming_call_equals_batch_inference(legacy_root: Path, tmp_path: Path) -> None:
    run = make_run("hifi", "P")
    port = converted_port(legacy_root, "hifi", "P")
    model_pt = tmp_path / "model.pt"
    save_model(port, run, [], model_pt)
    bin_file = legacy_root / "hifi" / "data" / "pileup" / "bin_synthetic_60_chr1"
    out = tmp_path / "calls.tsv"
    code = clair3_call.main(
        [
            str(model_pt),
            str(bin_file),
            "-o",
            str(out),
            "--batch-size",
            "5",
            "--threads",
            "1",
            "--probabilities",
        ]
    )
    assert code == 0
    lines = out.read_text().splitlines()
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    arrays = read_bin(bin_file)
    assert len(rows) == len(arrays["label"]) == DATASETS["hifi"]["n_train"]
    expected = np.concatenate(predict_heads(port, arrays["position_matrix"]), axis=1)
    got = np.array([[float(v) for v in row[header.index("p_gt21_AA") :]] for row in rows])
    assert np.allclose(got, expected, atol=1e-5)
    assert [row[0] for row in rows] == [p.decode() for p in arrays["position"]]
    assert [row[1] for row in rows] == [GT21[i] for i in expected[:, :21].argmax(1)]


def test_call_in_bf16_is_close_to_fp32(legacy_root: Path, tmp_path: Path) -> None:
    save_model(converted_port(legacy_root, "hifi", "F"), make_run("hifi", "F"), [], tmp_path / "model.pt")
    bin_file = legacy_root / "hifi" / "data" / "full_alignment" / "bin_synthetic_60_chr21"
    tables = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.tsv"
        args = [str(tmp_path / "model.pt"), str(bin_file), "-o", str(out), "--precision", precision]
        assert clair3_call.main([*args, "--probabilities", "--threads", "1"]) == 0
        tables[precision] = np.array(
            [[float(v) for v in line.split("\t")[9:]] for line in out.read_text().splitlines()[1:]]
        )
    assert tables["fp32"].shape == (DATASETS["hifi"]["n_test"], LABEL_WIDTH)
    assert np.abs(tables["bf16"] - tables["fp32"]).max() < 0.05


def test_torch_side_imports_without_tensorflow() -> None:
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "import tf2lightning.families.clair3.model, tf2lightning.families.clair3.lit\n"
        "import tf2lightning.families.clair3.call, tf2lightning.families.clair3.data\n"
        "import tf2lightning.families.clair3.weights\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lightning_step_with_lookahead_on_converted_data(legacy_root: Path, tmp_path: Path) -> None:
    import lightning as L

    from tf2lightning.families.clair3.lit import make_module

    run = make_run("hifi", "F")
    run = Run(**{**run.__dict__, "train": {"batch_size": 4, "lookahead": True, "warmup_steps": 2}})
    data.convert(run, legacy_root / "hifi" / "data", tmp_path / "data.h5")
    module = make_module(run, converted_port(legacy_root, "hifi", "F").train())
    before = [p.detach().clone() for p in module.parameters()]
    trainer = L.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.fit(module, datamodule=data.make_datamodule(run, tmp_path / "data.h5"))
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert "val_gt21_f1" in trainer.callback_metrics


# -------------------------------------------------------------------------------------------- benchmark
@pytest.mark.parametrize(("dataset", "arch"), [("hifi", "P"), ("ont", "F")])
def test_training_and_data_benchmarks_of_both_sides(
    legacy_root: Path, tmp_path: Path, dataset: str, arch: str
) -> None:
    from tests.bench_checks import check_training_and_data_benchmarks
    from tf2lightning.stages.weights import convert_weights

    run = make_run(dataset, arch)
    run = Run(**{**run.__dict__, "train": {"batch_size": 4}})
    data.convert(run, legacy_root / dataset / "data", tmp_path / "data.h5")
    convert_weights(run, legacy_root / f"{dataset}_{arch}", "ckpt", tmp_path / "weights.safetensors")
    paths = {
        "model_dir": legacy_root / f"{dataset}_{arch}",
        "h5": tmp_path / "data.h5",
        "weights": tmp_path / "weights.safetensors",
        "legacy_dir": legacy_root / dataset / "data",
    }
    views = ("pileup", "full_alignment")
    check_training_and_data_benchmarks(run, paths, tmp_path / "bench", 4, SIZES["n_train"], views)
