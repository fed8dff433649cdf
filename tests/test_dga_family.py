"""The DGA family: synthetic data, the alphabet, and Keras -> torch parity from ``model.h5`` and ``ckpt/``.

TensorFlow runs only in a child process (``tests.tfside.run_tf``); this process imports torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tfside import run_tf
from tf2lightning.core.keras_h5 import read_keras_h5
from tf2lightning.core.reference_file import read_reference
from tf2lightning.core.tf_checkpoint import read_layer_variables
from tf2lightning.core.tfrecord import iter_records, parse_example
from tf2lightning.families.dga.alphabet import ALPHABET, PAD_ID, UNKNOWN_ID, VOCAB_SIZE, encode_domains
from tf2lightning.families.dga.synthetic import CLASSES, LABEL_NOISE, generate_domains
from tf2lightning.run import Run

CONFIG: dict[str, Any] = {
    "family": "dga",
    "dataset_name": "tiny",
    "arch_name": "tiny",
    "dataset": {"n_train": 96, "n_val": 16, "n_test": 24, "max_len": 24},
    "arch": {
        "embed_dim": 8,
        "conv_filters": 6,
        "kernel_size": 4,  # even: exercises TF's asymmetric 'same' padding
        "pool_size": 2,
        "lstm_units": 5,
        "attention_units": 7,
        "dropout": 0.25,
        "legacy_epochs": 1,
        "legacy_batch_size": 32,
    },
    "parity": {"n_probe": 12},
    "seed": 3,
}
TRICKY = ["WWW.Example.COM", "a_b*c.de", "bücher.de", "x" * 40, "", "1-2.3"]
ATOL = 1e-5

TF_CHILD = """
import json, sys
from pathlib import Path
from tf2lightning.run import Run
from tf2lightning.families.dga import legacy
assert "torch" not in sys.modules, "the TF side imported torch"
config, root, tricky = json.loads(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
run = Run(**config)
legacy.write_data(run, root / "data")
legacy.train_model(run, root / "data", root / "model")
legacy.reference(run, root / "model", root / "data", root / "reference.h5")
tokens = legacy.encode_tf(tricky, legacy.read_sidecar(root / "data")["alphabet"], run.dataset["max_len"])
assert "torch" not in sys.modules, "the TF side imported torch"
print(json.dumps({"tricky_tokens": tokens.numpy().tolist()}))
"""


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("dga")
    out = run_tf(TF_CHILD, json.dumps(CONFIG), root, json.dumps(TRICKY))
    return root, json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- synthetic data
def test_generate_domains_is_deterministic_and_balanced() -> None:
    domains, labels = generate_domains(1000, np.random.default_rng(7))
    again, labels_again = generate_domains(1000, np.random.default_rng(7))
    other, _ = generate_domains(1000, np.random.default_rng(8))
    assert domains == again and np.array_equal(labels, labels_again)
    assert domains != other
    assert labels.dtype == np.int64 and len(domains) == 1000
    counts = np.bincount(labels, minlength=len(CLASSES))
    assert counts.min() >= 200 - 3 * LABEL_NOISE * 1000 and counts.max() <= 200 + 3 * LABEL_NOISE * 1000
    assert all(set(d) <= set(ALPHABET) and "." in d for d in domains)


def test_generate_domains_classes_overlap_in_length() -> None:
    domains, labels = generate_domains(2000, np.random.default_rng(0))
    lengths = np.array([len(d) for d in domains])
    ranges = [(lengths[labels == c].min(), lengths[labels == c].max()) for c in range(len(CLASSES))]
    assert max(lo for lo, _ in ranges) < min(hi for _, hi in ranges)  # every class shares a length


# ---------------------------------------------------------------------------------------------- alphabet
def test_encode_domains_edge_cases() -> None:
    tokens = encode_domains(TRICKY, 8)
    assert tokens.dtype == np.int32 and tokens.shape == (len(TRICKY), 8)
    assert np.array_equal(tokens[0], encode_domains(["www.exam"], 8)[0])  # upper case, cut at max_len
    assert tokens[1, 1] == UNKNOWN_ID and tokens[1, 3] == UNKNOWN_ID  # '_' and '*'
    assert tokens[2, 1] == UNKNOWN_ID and tokens[2, 2] == ALPHABET.index("c") + 1  # one id per character
    assert np.all(tokens[3] == ALPHABET.index("x") + 1)  # long names are cut on the right
    assert np.all(tokens[4] == PAD_ID)  # empty
    assert list(tokens[5, 5:]) == [PAD_ID] * 3  # padded on the right
    assert tokens.max() < VOCAB_SIZE and UNKNOWN_ID == VOCAB_SIZE - 1
    with pytest.raises(ValueError, match="max_len"):
        encode_domains(["a"], 0)


def test_tf_encoder_matches_numpy(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    _, child = legacy_dir
    expected = encode_domains(TRICKY, CONFIG["dataset"]["max_len"])
    # Exact on purpose: integer token ids, no floating point on either path.
    assert np.array_equal(np.array(child["tricky_tokens"]), expected)


# ---------------------------------------------------------------------------------------- legacy files
def test_legacy_data_files(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    root, _ = legacy_dir
    meta = json.loads((root / "data" / "dataset.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["alphabet"] == ALPHABET
    assert meta["max_len"] == CONFIG["dataset"]["max_len"]
    for index, split in enumerate(("train", "val", "test")):
        examples = [parse_example(r) for r in iter_records(root / "data" / f"{split}.tfrecord", "GZIP")]
        assert len(examples) == meta["splits"][split] == CONFIG["dataset"][f"n_{split}"]
        domains, labels = generate_domains(len(examples), np.random.default_rng((CONFIG["seed"], index)))
        assert [e["domain"][0].decode() for e in examples] == domains
        assert np.array_equal(np.concatenate([e["label"] for e in examples]), labels)
    model_dir = root / "model"
    assert (model_dir / "model.h5").is_file() and (model_dir / "ckpt" / "checkpoint").is_file()
    history = json.loads((model_dir / "history.json").read_text())
    assert len(history["loss"]) == CONFIG["arch"]["legacy_epochs"]


def test_reference_inputs_are_the_test_domains(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    root, _ = legacy_dir
    ref = read_reference(root / "reference.h5")
    records = iter_records(root / "data" / "test.tfrecord", "GZIP")
    n_probe = CONFIG["parity"]["n_probe"]
    domains = [parse_example(next(records))["domain"][0].decode() for _ in range(n_probe)]
    assert np.array_equal(ref.inputs["tokens"], encode_domains(domains, CONFIG["dataset"]["max_len"]))
    assert list(ref.outputs) == ["probs"]


# ---------------------------------------------------------------------------------------------- parity
def _read_weights(root: Path, source: str) -> dict[str, np.ndarray]:
    """The trained Keras weights under canonical ``<layer>/<variable>`` names, read by the core readers."""
    if source == "ckpt":
        return read_layer_variables(root / "model" / "ckpt")
    return read_keras_h5(root / "model" / "model.h5")


def _parity(net: Any, reference_h5: Path) -> dict[str, float]:
    """Max abs error per reference output and layer (core.parity), asserting every row is within tolerance."""
    from tf2lightning.core.parity import capture_activations, compare, read_reference
    from tf2lightning.families.dga.model import PARITY_LAYERS, PARITY_OUTPUTS

    ref = read_reference(reference_h5)
    assert set(PARITY_LAYERS) == set(ref.layers), "every reference layer needs a PARITY_LAYERS entry"
    paths = {name: path for name, (path, _) in PARITY_LAYERS.items()}
    logits, activations = capture_activations(net, paths, ref.inputs["tokens"])
    outputs = {name: to_output(logits) for name, to_output in PARITY_OUTPUTS.items()}
    report = compare(ref, outputs, activations, PARITY_LAYERS, atol=ATOL, rtol=0.0)
    errors = {f"{row.kind}:{row.legacy_name}": row.max_abs_err for row in report.rows}
    assert report.ok and report.layers_ok, errors
    return errors


@pytest.mark.parametrize("source", ["h5", "ckpt"])
def test_parity(legacy_dir: tuple[Path, dict[str, Any]], source: str) -> None:
    from tf2lightning.core.torch_weights import load_mapped, target_spec
    from tf2lightning.families.dga import model, weights

    root, _ = legacy_dir
    run = Run(**CONFIG)
    net = model.build(run)
    load_mapped(net, weights.weight_map(run).apply(_read_weights(root, source), target_spec(net)))
    errors = _parity(net, root / "reference.h5")
    print(f"dga parity ({source}):", json.dumps(errors), file=sys.stderr)
    assert len(errors) == len(model.PARITY_LAYERS) + len(model.PARITY_OUTPUTS)


def test_h5_and_checkpoint_hold_the_same_weights(legacy_dir: tuple[Path, dict[str, Any]]) -> None:
    root, _ = legacy_dir
    h5, ckpt = _read_weights(root, "h5"), _read_weights(root, "ckpt")
    assert sorted(h5) == sorted(ckpt)
    # Exact on purpose: the same variables saved twice by one process, read back as stored bytes (no math).
    assert all(np.array_equal(h5[k], ckpt[k]) for k in h5)


@pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore:Converting a tensor to a Python boolean"
)
def test_torch_model_exports(tmp_path: Path) -> None:
    import torch

    from tf2lightning.families.dga import model

    run = Run(**CONFIG)
    net = model.build(run).eval()
    (tokens,) = model.example_inputs(run)
    with torch.no_grad():
        expected = net(tokens)
        scripted = torch.jit.script(net)(tokens)
    # Not bitwise: TorchScript may fuse or reorder float ops (its executor and the CPU's kernels decide),
    # so the script is held to the same atol as every other export check.
    assert np.abs(scripted.numpy() - expected.numpy()).max() < 1e-5
    onnx = pytest.importorskip("onnxruntime")
    torch.onnx.export(
        net, (tokens,), tmp_path / "dga.onnx", input_names=["tokens"], dynamo=False,
        dynamic_axes={"tokens": {0: "batch"}},
    )  # fmt: skip
    got = onnx.InferenceSession(tmp_path / "dga.onnx").run(None, {"tokens": tokens.numpy()})[0]
    assert np.abs(got - expected.numpy()).max() < 1e-5


def test_torch_side_never_imported_tensorflow() -> None:
    import tf2lightning.families.dga.model
    import tf2lightning.families.dga.weights  # noqa: F401

    assert "tensorflow" not in sys.modules and "keras" not in sys.modules
