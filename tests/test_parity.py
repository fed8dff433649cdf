"""Parity end to end: a Keras model's reference file (TF child process) against its torch port.

The pytest process never imports TensorFlow; one module-scoped child builds the Keras model, writes
``reference.h5`` with ``write_reference`` and dumps the weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from tests.tfside import run_tf
from tf2lightning.core.parity import (
    ParityLayer,
    capture_activations,
    channels_first_to_last,
    compare,
    read_reference,
    run_parity,
)
from tf2lightning.core.torch_weights import load_mapped, load_safetensors, save_safetensors, target_spec
from tf2lightning.core.weight_map import Rule, Transform, WeightMap, chain, flip, permute, reshape, transpose
from tf2lightning.errors import FormatError, ParityError

LENGTH, CHANNELS, FILTERS, KERNEL, UNITS = 16, 4, 8, 5, 3

TF_CHILD = """
import sys
import numpy as np
import keras
from tf2lightning.tfside.reference import write_reference

out = sys.argv[1]
keras.utils.set_random_seed(0)
x = keras.Input((16, 4), name="dna")
h = keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="conv")(x)
y = keras.layers.Dense(3, name="dense")(h)
model = keras.Model(x, y, name="tiny")
for layer in model.layers:  # non-zero biases, so a dropped bias would show
    for var in layer.weights:
        if var.name == "bias":
            var.assign(np.random.default_rng(1).normal(size=var.shape).astype("float32"))
probe = np.random.default_rng(2).normal(size=(3, 16, 4)).astype("float32")
write_reference(model, {"dna": probe}, f"{out}/reference.h5")
model.save_weights(f"{out}/tiny.weights.h5")
weights = {f"{layer.name}/{var.name}": np.asarray(var) for layer in model.layers for var in layer.weights}
np.savez(f"{out}/weights.npz", **weights)
assert "torch" not in sys.modules, "the TF side imported torch"
"""


class TinyPort(nn.Module):
    """The torch port: channels-last input like the legacy model, channels-first convolution inside."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(CHANNELS, FILTERS, KERNEL, padding=KERNEL // 2)
        self.act = nn.ReLU()
        self.dense = nn.Linear(FILTERS, UNITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x.transpose(1, 2)))
        return self.dense(h.transpose(1, 2))


TABLE = {"conv": ParityLayer("act", channels_first_to_last), "dense": ParityLayer("dense")}


def weight_map(conv_kernel: Transform) -> WeightMap:
    return WeightMap(
        [
            Rule("conv/kernel", "conv.weight", conv_kernel),
            Rule("dense/kernel", "dense.weight", transpose()),
            Rule(r"(conv|dense)/bias", r"\1.bias"),
        ]
    )


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("legacy")
    run_tf(TF_CHILD, out, timeout=300)  # a hang backstop, not a speed check: the child takes seconds
    return out


RIGHT_CONV = permute(2, 1, 0)


def port(legacy: Path, conv_kernel: Transform = RIGHT_CONV) -> TinyPort:
    torch.manual_seed(0)
    module = TinyPort()
    source = dict(np.load(legacy / "weights.npz"))
    return load_mapped(module, weight_map(conv_kernel).apply(source, target_spec(module)))


def test_reference_file_layout(legacy: Path) -> None:
    ref = read_reference(legacy / "reference.h5")
    assert list(ref.inputs) == ["dna"] and ref.inputs["dna"].shape == (3, LENGTH, CHANNELS)
    assert list(ref.outputs) == ["dense"] and ref.outputs["dense"].shape == (3, LENGTH, UNITS)
    assert list(ref.layers) == ["conv", "dense"]  # execution order
    assert ref.layers["conv"].shape == (3, LENGTH, FILTERS) and ref.layers["conv"].min() >= 0  # after relu
    assert ref.attrs["format"] == "tf2lightning.reference" and ref.attrs["model"] == "tiny"
    with h5py.File(legacy / "reference.h5") as f:
        assert [f["layers"][n].attrs["order"] for n in ("conv", "dense")] == [0, 1]
    assert (legacy / "tiny.weights.h5").stat().st_size > 0


def test_correct_port_is_within_1e_5(legacy: Path, tmp_path: Path) -> None:
    # Through a safetensors file, as the workflow does.
    module = TinyPort()
    arrays = weight_map(RIGHT_CONV).apply(dict(np.load(legacy / "weights.npz")), target_spec(module))
    save_safetensors(arrays, tmp_path / "tiny.safetensors", {"source": "weights.npz"})
    load_mapped(module, load_safetensors(tmp_path / "tiny.safetensors"))

    report = run_parity(module, legacy / "reference.h5", TABLE)
    assert report.ok and report.layers_ok and report.first_failing_layer is None
    assert [(r.kind, r.legacy_name, r.torch_name) for r in report.rows] == [
        ("layer", "conv", "act"),
        ("layer", "dense", "dense"),
        ("output", "dense", "dense"),
    ]
    assert max(r.max_abs_err for r in report.rows) <= 1e-5
    report.raise_for_outputs()

    report.write_tsv(tmp_path / "parity.tsv")
    lines = (tmp_path / "parity.tsv").read_text().splitlines()
    assert lines[0] == "# verdict: PASS"
    header = next(line for line in lines if not line.startswith("#")).split("\t")
    assert header[:4] == ["source", "kind", "legacy_name", "torch_name"] and "max_abs_err" in header
    assert len([line for line in lines if not line.startswith("#")]) == 1 + len(report.rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parity.tsv", "tiny.safetensors"]  # no temp files


@pytest.mark.parametrize(
    "wrong",
    [chain(permute(2, 1, 0), flip(2)), reshape(FILTERS, CHANNELS, KERNEL)],
    ids=["flipped-kernel", "reshape-not-permute"],
)
def test_deliberately_wrong_mapping_fails(legacy: Path, wrong: Transform, tmp_path: Path) -> None:
    report = run_parity(port(legacy, wrong), legacy / "reference.h5", TABLE)
    assert not report.ok
    assert report.first_failing_layer is not None and report.first_failing_layer.legacy_name == "conv"
    with pytest.raises(
        ParityError, match=r"outputs over tolerance: dense .*first layer over tolerance: conv"
    ):
        report.raise_for_outputs()
    report.write_tsv(tmp_path / "parity.tsv")
    text = (tmp_path / "parity.tsv").read_text()
    assert text.startswith("# verdict: FAIL\n") and "first_failing_layer: conv\n" in text


def test_shape_mismatch_is_a_failing_row(legacy: Path) -> None:
    ref = read_reference(legacy / "reference.h5")
    module = port(legacy)
    outputs, acts = capture_activations(module, {"conv": "act", "dense": "dense"}, ref.inputs["dna"])
    assert module.training  # the flag is restored
    table = {"conv": ("act", None), "dense": "dense", "gone": "dense"}  # conv left channels-first
    report = compare(ref, outputs, acts, table)
    rows = {r.legacy_name: r for r in report.rows if r.kind == "layer"}
    assert not rows["conv"].ok and rows["conv"].note.startswith("shape mismatch")
    assert rows["conv"].torch_shape == (3, FILTERS, LENGTH)
    assert not rows["gone"].ok and rows["gone"].note == "not in the reference"
    assert report.ok and report.first_failing_layer is rows["conv"]


def test_lstm_tuple_output_keeps_first_element() -> None:
    lstm = nn.Sequential()
    lstm.add_module("rnn", nn.LSTM(2, 3, batch_first=True))
    _, acts = capture_activations(lstm, {"rnn": "rnn"}, np.zeros((1, 4, 2), np.float32))
    assert acts["rnn"].shape == (1, 4, 3)


def test_bad_reference_file_is_a_format_error(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(FormatError, match=r"other\.h5: attribute format"):
        read_reference(tmp_path / "other.h5")


def test_pytest_process_never_imported_tensorflow() -> None:
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules
