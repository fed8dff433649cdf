"""Clair3 against files written by upstream's own code (``../shared/upstream/clair3``, HKU-BAL/Clair3 at
bb9f969): released model folders (2-head pileup, 4-head full alignment at depths 89 and 55), a Train.py
SavedModel, a sharded re-save, probe inputs with upstream's head outputs.

The TF side runs in child processes (``tests.tfside.run_tf``); this process imports torch only.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import onnxruntime
import pytest
import torch

from tests.tfside import run_tf
from tests.upstream_fixtures import upstream_dir
from tf2lightning.core.tf_checkpoint import list_tf_checkpoint, read_bundle_index
from tf2lightning.core.torch_weights import load_mapped, target_spec
from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.clair3 import data, model, weights
from tf2lightning.families.clair3.checkpoint import checkpoint_prefix, network_sizes
from tf2lightning.run import Run
from tf2lightning.stages.weights import convert_weights, export_model, load_port

ATOL = 1e-5
HEAD_KEYS = ("output_gt21", "output_genotype", "output_indel_length_1", "output_indel_length_2")
# (fixture folder, network, model path inside it, depth)
MODELS = (
    ("released_ont", "P", "", 89),
    ("released_ont", "F", "", 89),
    ("released_hifi", "P", "", 55),
    ("released_hifi", "F", "", 55),
    ("trainpy_savedmodel", "F", "full_alignment.01", 89),
)
KIND = {"P": "pileup", "F": "full_alignment"}


def fixture_run(legacy_model: Path, network: str, depth: int, **arch: object) -> Run:
    arch = {"network": network, "legacy_model": str(legacy_model), **arch}
    return Run("clair3", f"d{depth}", network, {"depth": depth}, arch, seed=3)


def probe(folder: str, network: str) -> tuple[np.ndarray, list[np.ndarray]]:
    arrays = np.load(upstream_dir("clair3", folder, f"probe_{KIND[network]}.npz"))
    return arrays["input"], [arrays[k] for k in HEAD_KEYS if k in arrays]


def max_errors(got: list[np.ndarray] | tuple[np.ndarray, ...], want: list[np.ndarray]) -> list[float]:
    assert len(got) == len(want)
    return [float(np.abs(np.asarray(g) - w).max()) for g, w in zip(got, want, strict=True)]


@pytest.mark.parametrize(("folder", "network", "inner", "depth"), MODELS)
def test_port_reproduces_upstream_heads_eager(folder: str, network: str, inner: str, depth: int) -> None:
    path = upstream_dir("clair3", folder, inner) if inner else upstream_dir("clair3", folder)
    run = fixture_run(path, network, depth)
    case = json.loads((upstream_dir("clair3", folder) / "case.json").read_text())
    heads = len(case["models"][KIND[network]]["heads"]) if "models" in case else 4
    assert network_sizes(run)["heads"] == heads
    port = model.build(run)
    legacy = weights.read_source(run, path)
    if not inner:  # every model tensor of the file is read (and the map uses each one)
        assert len(legacy) == model_tensor_count(checkpoint_prefix(path, network))
    load_mapped(port, weights.weight_map(run).apply(legacy, target_spec(port)))
    x, want = probe(folder, network)
    with torch.no_grad():
        got = [t.numpy() for t in model.probabilities(port.eval()(torch.from_numpy(x)))]
    assert max(max_errors(got, want)) < ATOL


def model_tensor_count(prefix: Path) -> int:
    """Model variables stored in a released checkpoint: values that are not optimizer state. (A
    SavedModel's flat ``variables/<i>`` list mixes in the optimizer's; the TF-side test counts those.)"""
    names = [n for n in list_tf_checkpoint(prefix) if n.endswith("/.ATTRIBUTES/VARIABLE_VALUE")]
    return sum(not n.startswith("optimizer/") and ".OPTIMIZER_SLOT" not in n for n in names)


@pytest.mark.parametrize(
    ("folder", "network", "depth"), [("released_ont", "P", 89), ("released_hifi", "F", 55)]
)
def test_torchscript_and_onnx_reproduce_upstream_heads(
    tmp_path: Path, folder: str, network: str, depth: int
) -> None:
    path = upstream_dir("clair3", folder)
    run = fixture_run(path, network, depth)
    convert_weights(run, path, "ckpt", tmp_path / "w.safetensors")
    export_model(run, tmp_path / "w.safetensors", tmp_path / "m.ts", tmp_path / "m.onnx")
    x, want = probe(folder, network)
    with torch.no_grad():
        eager = [
            t.softmax(-1).numpy() for t in load_port(run, tmp_path / "w.safetensors")(torch.from_numpy(x))
        ]
        scripted = [
            t.softmax(-1).numpy() for t in torch.jit.load(str(tmp_path / "m.ts"))(torch.from_numpy(x).float())
        ]
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    onnx = [
        torch.from_numpy(t).softmax(-1).numpy() for t in session.run(None, {"input_0": x.astype(np.float32)})
    ]
    for label, got in (("eager", eager), ("TorchScript", scripted), ("ONNX", onnx)):
        assert max(max_errors(got, want)) < ATOL, label


def test_prefix_index_and_folder_name_the_same_checkpoint() -> None:
    folder = upstream_dir("clair3", "released_ont")
    for given in (folder, folder / "pileup", folder / "pileup.index", folder / "pileup.data-00000-of-00001"):
        assert checkpoint_prefix(given, "P") == folder / "pileup"
    saved = upstream_dir("clair3", "trainpy_savedmodel", "full_alignment.01")
    assert checkpoint_prefix(saved, "F") == saved / "variables" / "variables"
    with pytest.raises(FormatError, match=r"no variable 'LSTM1/forward_layer/cell/kernel'.*looks like a F"):
        weights.read_source(fixture_run(saved, "P", 89), saved)


def test_contradicting_config_names_both_values() -> None:
    folder = upstream_dir("clair3", "released_hifi")
    assert network_sizes(fixture_run(folder, "F", 55, l4_units=24))["conv_filters"] == [8, 12, 16]
    with pytest.raises(
        ConfigError, match=r"archs\.F\.l4_units is 256, but the checkpoint .*full_alignment has l4_units = 24"
    ):
        network_sizes(fixture_run(folder, "F", 55, l4_units=256))
    with pytest.raises(ConfigError, match=r"archs\.P\.heads is 4, but .* has heads = 2"):
        network_sizes(fixture_run(folder, "P", 55, heads=4))
    wide = Run(
        "clair3", "h", "P", {"depth": 55, "flanking": 20}, {"network": "P", "legacy_model": str(folder)}
    )
    with pytest.raises(
        ConfigError, match=r"datasets\.h\.flanking is 20, but .*pileup was made with flanking = 16"
    ):
        network_sizes(wide)


TF_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
import tensorflow as tf
from tf2lightning.run import Run
from tf2lightning.families.clair3 import legacy
out, models = Path(sys.argv[1]), json.loads(sys.argv[2])


class OnePerShard(tf.train.experimental.ShardingCallback):
    description = "one tensor per shard"

    def __call__(self, tensors):
        return [{t.checkpoint_key: {t.slice_spec: t.tensor}} for t in tensors]


report = {}
for name, (path, network, depth, probe) in models.items():
    run = Run("clair3", "d", network, {"depth": depth}, {"network": network, "legacy_model": path})
    model = legacy.load_model(run, Path(path))
    arrays = np.load(probe)
    got = model(arrays["input"], training=False)
    keys = [k for k in ("output_gt21", "output_genotype", "output_indel_length_1", "output_indel_length_2")
            if k in arrays]
    report[name] = {"variables": len(model.variables), "heads": len(got),
                    "error": max(float(np.abs(np.asarray(g) - arrays[k]).max()) for g, k in zip(got, keys))}
    if name == "released_hifi/F":  # the same model, each tensor in a data shard of its own
        model.save_weights(str(out / "sharded" / "full_alignment"),
                           options=tf.train.CheckpointOptions(experimental_sharding_callback=OnePerShard()))
(out / "report.json").write_text(json.dumps(report))
assert "torch" not in sys.modules
"""


@pytest.fixture(scope="module")
def tf_side(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("clair3_tf")
    models = {}
    for folder, network, inner, depth in MODELS:
        path = upstream_dir("clair3", folder, inner) if inner else upstream_dir("clair3", folder)
        probe_file = upstream_dir("clair3", folder, f"probe_{KIND[network]}.npz")
        models[f"{folder}/{network}"] = (str(path), network, depth, str(probe_file))
    run_tf(TF_CHILD, out, json.dumps(models))
    return out, json.loads((out / "report.json").read_text())


def test_tf_side_binds_every_variable_and_reproduces_probe(tf_side: tuple[Path, dict]) -> None:
    _, report = tf_side
    for folder, network, inner, depth in MODELS:
        path = upstream_dir("clair3", folder, inner) if inner else upstream_dir("clair3", folder)
        entry = report[f"{folder}/{network}"]
        assert entry["error"] < ATOL
        assert entry["variables"] == len(weights.read_source(fixture_run(path, network, depth), path))
        assert entry["heads"] == (2 if network == "P" else 4)


def test_sharded_checkpoint_reads_like_the_original(tf_side: tuple[Path, dict]) -> None:
    out, _ = tf_side
    sharded, original = out / "sharded", upstream_dir("clair3", "released_hifi")
    assert read_bundle_index(sharded / "full_alignment").num_shards > 2
    run = fixture_run(sharded, "F", 55)
    got = weights.read_source(run, sharded)
    want = weights.read_source(fixture_run(original, "F", 55), original)
    assert sorted(got) == sorted(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_data_h5_equals_upstream_bins(tmp_path: Path) -> None:
    bins = upstream_dir("clair3", "bins")
    expected = np.load(bins / "expected.npz")
    for platform, depth in (("ont", 89), ("hifi", 55)):
        run = Run("clair3", platform, "", {"depth": depth, "split": {"val": [], "test": ["chr2"]}})
        data.convert(run, bins / platform, tmp_path / f"{platform}.h5")
        with h5py.File(tmp_path / f"{platform}.h5") as h5:
            for kind in ("pileup", "full_alignment"):
                names, split = h5[f"{kind}/file"][()], h5[f"{kind}/split"][()]
                files = sorted({name.decode() for name in names})
                assert files == ["bin_hg002_60_chr1", "bin_hg002_60_chr2"]
                for name in files:
                    rows = names == name.encode()
                    assert np.all(split[rows] == (2 if name.endswith("chr2") else 0))
                    for array in ("position_matrix", "label", "position", "alt_info"):
                        want = expected[f"{platform}/{kind}/{name}/{array}"]
                        got = h5[f"{kind}/{array}"][()][rows].reshape(want.shape)
                        assert np.array_equal(got, want), (platform, kind, name, array)
                        assert got.dtype == want.dtype or want.dtype.kind == "S"
    assert expected["ont/pileup/bin_hg002_60_chr1/position_matrix"].max() > 127  # int32 counts kept


def test_call_on_an_upstream_bin_prints_clean_positions(tmp_path: Path) -> None:
    from tf2lightning.families.clair3 import call
    from tf2lightning.stages.train import save_model

    folder = upstream_dir("clair3", "released_ont")
    run = fixture_run(folder, "P", 89)
    convert_weights(run, folder, "ckpt", tmp_path / "w.safetensors")
    save_model(load_port(run, tmp_path / "w.safetensors"), run, [], tmp_path / "model.pt")
    bin_file = upstream_dir("clair3", "bins", "ont", "pileup", "bin_hg002_60_chr2")
    assert call.main([str(tmp_path / "model.pt"), str(bin_file), "-o", str(tmp_path / "calls.tsv")]) == 0
    lines = [line.split("\t") for line in (tmp_path / "calls.tsv").read_text().splitlines()]
    want = np.load(upstream_dir("clair3", "bins", "expected.npz"))["ont/pileup/bin_hg002_60_chr2/position"]
    assert [row[0] for row in lines[1:]] == [p.decode() for p in want.reshape(-1)]
    assert lines[0] == ["position", "gt21", "p_gt21", "genotype", "p_genotype"]  # a 2-head model
    assert lines[1][0].startswith("chr2:") and len(lines[1]) == 5


def test_a_two_head_model_trains_and_evaluates_on_upstream_bins(tmp_path: Path) -> None:
    import lightning as L

    from tf2lightning.families.clair3.evaluate import evaluate
    from tf2lightning.families.clair3.lit import make_module

    folder, bins = upstream_dir("clair3", "released_ont"), upstream_dir("clair3", "bins", "ont")
    run = fixture_run(folder, "P", 89)
    split = {"by": "fraction", "val_fraction": 0.25, "test_fraction": 0.25, "seed": 0}  # of 64 sites
    dataset = {"depth": 89, "split": split}
    run = Run(**{**run.__dict__, "dataset": dataset, "train": {"batch_size": 8}})
    data.convert(run, bins, tmp_path / "data.h5")
    convert_weights(run, folder, "ckpt", tmp_path / "w.safetensors")
    module = make_module(run, load_port(run, tmp_path / "w.safetensors").train())
    trainer = L.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.fit(module, datamodule=data.make_datamodule(run, tmp_path / "data.h5"))
    assert {"val_gt21_f1", "val_genotype_f1"} <= set(trainer.callback_metrics)
    metrics = evaluate(run, module.model, tmp_path / "data.h5")
    assert metrics["n_test"] == 16 and "gt21_accuracy" in metrics and "genotype_accuracy" in metrics
    assert not any(key.startswith("indel_length") for key in metrics)
