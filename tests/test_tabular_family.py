"""The tabular family: datasets and splits, legacy .npz -> HDF5, the teacher, the models, the recipe, and
the plain model's checkpoint -> safetensors -> parity chain (against a numpy forward written separately)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tf2lightning.config import validate_families
from tf2lightning.core.tsv import read_tsv
from tf2lightning.errors import ConfigError, FormatError, ParityError
from tf2lightning.families.tabular import data, evaluate, legacy, model, numpy_reference, teacher
from tf2lightning.families.tabular.datasets import LOADERS, SHAPES, load_table, stratified_split
from tf2lightning.families.tabular.recipe import Recipe, RecipeConfig
from tf2lightning.run import Run
from tf2lightning.stages.parity import check_parity
from tf2lightning.stages.weights import convert_weights, export_model

ARCHS = {
    "MLP": {"kind": "mlp", "hidden": [16, 8], "activation": "geglu", "legacy_epochs": 2},
    "Transformer": {"kind": "transformer", "d_model": 8, "heads": 2, "layers": 1, "legacy_epochs": 1},
}


def make_run(arch: str = "MLP", dataset: str = "wine", **train: Any) -> Run:
    section = {"datasets": {dataset: {"teacher_max_iter": 10}}, "archs": ARCHS, "train": train}
    config = {"seed": 1, "threads": 1, "families": {"tabular": section}}
    validate_families(config)
    return Run.from_config(config, "tabular", dataset, arch)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wine as legacy .npz, converted HDF5 and the teacher's probabilities."""
    root = tmp_path_factory.mktemp("tabular")
    run = make_run()
    (root / "legacy").mkdir()
    legacy.write_data(run, root / "legacy")
    data.convert(run, root / "legacy", root / "data.h5")
    teacher.fit_teacher(run, {"data": root / "data.h5"}, {"probs": root / "probs.h5"})
    return root


def test_shapes_table_matches_the_bundled_datasets() -> None:
    for name, loader in LOADERS.items():
        bunch = loader()
        assert SHAPES[name] == (bunch.data.shape[1], len(bunch.target_names))


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    codes = stratified_split(labels, 0.2, 0.1, seed=0)
    for cls, n in enumerate((50, 30, 20)):
        counts = np.bincount(codes[labels == cls], minlength=3)
        assert counts.tolist() == [n - round(n * 0.2) - round(n * 0.1), round(n * 0.2), round(n * 0.1)]
    assert not np.array_equal(codes, stratified_split(labels, 0.2, 0.1, seed=1))


def test_standardized_on_the_train_split_only() -> None:
    table = load_table(make_run(dataset="breast_cancer"))
    train = table.x[table.split == 0]
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-4)
    assert abs(table.x[table.split == 2].mean()) > 1e-4  # test rows did not shape the statistics


def test_convert_round_trips_the_legacy_table(prepared: Path) -> None:
    before, after = data.read_legacy(prepared / "legacy"), data.read_table(prepared / "data.h5")
    for key in ("x", "label", "split", "mean", "std"):
        np.testing.assert_array_equal(getattr(before, key), getattr(after, key))
    assert after.class_names == before.class_names and len(after.feature_names) == 13


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("label"), "no array 'label'"),
        (lambda a: a.update(x=a["x"].astype(np.float64)), "'x' must be float32"),
        (lambda a: a["x"].__setitem__((5, 2), np.nan), "'x' row 5 has a non-finite value"),
        (lambda a: a.update(label=a["label"] + 7), "labels span"),
        (lambda a: a.update(split=a["split"].astype(np.int64)), "'split' must be uint8"),
    ],
)
def test_bad_legacy_data_names_file_and_item(
    prepared: Path, tmp_path: Path, change: Any, message: str
) -> None:
    with np.load(prepared / "legacy" / data.LEGACY_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(tmp_path / data.LEGACY_FILE, **arrays)
    with pytest.raises(FormatError, match=message) as info:
        data.convert(make_run(), tmp_path, tmp_path / "out.h5")
    assert str(tmp_path / data.LEGACY_FILE) in str(info.value)
    assert not (tmp_path / "out.h5").exists()


def test_teacher_is_a_good_probability_model(prepared: Path) -> None:
    table = data.read_table(prepared / "data.h5")
    probs = teacher.read_teacher_probs(prepared / "probs.h5", len(table.label), 3)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    test = table.split == 2
    assert (probs[test].argmax(1) == table.label[test]).mean() > 0.85
    with pytest.raises(FormatError, match=r"probs.h5: 'probs' has shape \(178, 3\), expected \(170, 3\)"):
        teacher.read_teacher_probs(prepared / "probs.h5", 170, 3)


@pytest.mark.parametrize("arch", ["MLP", "Transformer"])
def test_models_give_logits(arch: str) -> None:
    run = make_run(arch)
    net = model.build(run)
    (x,) = model.example_inputs(run)
    assert net(x).shape == (2, 3)
    if arch == "MLP":
        assert net.backbone[0][0].out_features == 32  # GEGLU: two linear outputs per hidden unit
    else:
        assert net.backbone[0](x).shape == (2, 14, 8)  # CLS + 13 feature tokens


def _legacy_chain(run: Run, prepared: Path, out: Path) -> None:
    """Train the plain model, write its numpy reference and convert its checkpoint."""
    legacy.train_model(run, prepared / "legacy", out / "legacy_model")
    legacy.reference(run, out / "legacy_model", prepared / "legacy", out / "reference.h5")
    convert_weights(run, out / "legacy_model", "pt", out / "pt.safetensors")


@pytest.mark.parametrize("arch", ["MLP", "Transformer"])
def test_plain_checkpoint_converts_exports_with_parity_against_the_numpy_reference(
    arch: str, tmp_path: Path, prepared: Path
) -> None:
    run = make_run(arch)
    _legacy_chain(run, prepared, tmp_path)
    history = torch.load(tmp_path / "legacy_model" / "model.pt", weights_only=True)["history"]
    assert len(history) == run.arch["legacy_epochs"]
    check_parity(run, tmp_path / "reference.h5", [tmp_path / "pt.safetensors"], tmp_path / "parity.tsv")
    rows = read_tsv(tmp_path / "parity.tsv")
    assert {r["legacy_name"] for r in rows} == {"backbone.0", "backbone", "head", "probs"}
    # float32 torch modules against a float64 numpy forward written separately: fp32 rounding only.
    assert all(float(r["max_abs_err"]) < 1e-5 and r["ok"] == "true" for r in rows)
    export_model(run, tmp_path / "pt.safetensors", tmp_path / "model.ts", tmp_path / "model.onnx")


def _swapped_geglu(self: model.GEGLU, x: torch.Tensor) -> torch.Tensor:
    gate, value = x.chunk(2, dim=-1)
    return value * torch.nn.functional.gelu(gate)


_LAYER_NORM = torch.nn.functional.layer_norm


def _layer_norm_eps_1e_3(x: torch.Tensor, shape: Any, weight: Any, bias: Any, eps: float) -> torch.Tensor:
    return _LAYER_NORM(x, shape, weight, bias, 1e-3)


@pytest.mark.parametrize(
    ("arch", "target", "mistake"),
    [
        ("MLP", "GEGLU.forward", _swapped_geglu),  # the gate taken from the wrong half
        ("Transformer", "F.layer_norm", _layer_norm_eps_1e_3),  # Keras' epsilon in a torch port
    ],
)
def test_a_mistake_in_the_port_fails_parity(
    arch: str, target: str, mistake: Any, tmp_path: Path, prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(arch)
    _legacy_chain(run, prepared, tmp_path)  # the reference is computed before the port is broken
    owner, name = target.split(".")
    if owner == "F":
        monkeypatch.setattr(torch.nn.modules.normalization.F, name, mistake)
    else:
        monkeypatch.setattr(getattr(model, owner), name, mistake)
    with pytest.raises(ParityError):
        check_parity(run, tmp_path / "reference.h5", [tmp_path / "pt.safetensors"], tmp_path / "parity.tsv")


def test_numpy_reference_by_hand() -> None:
    """A tiny fixed MLP, GEGLU, LayerNorm and attention, each against values worked out by hand."""
    state = {
        "backbone.0.0.weight": np.array([[1.0, -1.0], [2.0, 0.0]]),
        "backbone.0.0.bias": np.array([0.0, -1.0]),
        "head.weight": np.array([[1.0, 0.0], [0.0, 3.0]]),
        "head.bias": np.array([0.5, 0.0]),
    }
    out = numpy_reference.forward(state, {"kind": "mlp", "activation": "relu"}, np.array([[1.0, 2.0]]))
    # W x + b = [1 - 2, 2 - 1] = [-1, 1] -> relu [0, 1] -> head [0.5, 3]
    np.testing.assert_allclose(out["backbone"], [[0.0, 1.0]])
    np.testing.assert_allclose(out["head"], [[0.5, 3.0]])
    np.testing.assert_allclose(out["probs"], [[1 / (1 + np.exp(2.5)), 1 / (1 + np.exp(-2.5))]])
    # GEGLU: first half times gelu(second half); gelu(1) = Phi(1) = 0.8413447460685429.
    geglu = numpy_reference.activation("geglu", np.array([2.0, 3.0, 1.0, 0.0]))
    np.testing.assert_allclose(geglu, [2 * 0.8413447460685429, 0.0])
    # LayerNorm of [1, 2, 3]: mean 2, biased variance 2/3.
    norm = {"n.weight": np.ones(3), "n.bias": np.zeros(3)}
    expected = np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3 + numpy_reference.LAYER_NORM_EPS)
    np.testing.assert_allclose(numpy_reference.layer_norm(norm, "n", np.array([1.0, 2.0, 3.0])), expected)
    # Attention with zero q and k: uniform weights, so every token gets the mean of the values (v = x).
    d = 2
    qkv = np.zeros((3 * d, d))
    qkv[2 * d :] = np.eye(d)
    attn = {"a.qkv.weight": qkv, "a.qkv.bias": np.zeros(3 * d), "a.out.weight": np.eye(d), "a.out.bias": 0}
    x = np.array([[[1.0, 0.0], [3.0, 4.0]]])
    np.testing.assert_allclose(numpy_reference.attention(attn, "a", x, heads=2), [[[2.0, 2.0], [2.0, 2.0]]])


def test_read_source_rejects_a_file_without_weights(tmp_path: Path) -> None:
    torch.save({"something": 1}, tmp_path / "model.pt")
    from tf2lightning.families.tabular.weights import read_source

    with pytest.raises(FormatError, match=r"model.pt: no 'model_state_dict'"):
        read_source(make_run(), tmp_path / "model.pt")


def test_recipe_schedule_targets_and_distillation() -> None:
    recipe = Recipe(RecipeConfig(warmup_fraction=0.2, min_lr_ratio=0.1, label_smoothing=0.1), 4, seed=0)
    factors = [recipe.lr_factor(step, 10) for step in range(10)]
    assert factors[:2] == [0.5, 1.0] and factors[2] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert np.all(np.diff(factors[1:]) <= 1e-12)
    targets = recipe.soft_targets(torch.tensor([2]))
    np.testing.assert_allclose(targets.numpy(), [[0.025, 0.025, 0.925, 0.025]], rtol=1e-6)
    teacher_probs = torch.tensor([[0.7, 0.1, 0.1, 0.1]])
    assert float(recipe.distillation(teacher_probs.log(), teacher_probs)) == pytest.approx(0.0, abs=1e-6)
    assert float(recipe.distillation(torch.zeros(1, 4), teacher_probs)) > 0.01


def test_mixup_mixes_inputs_targets_and_teacher_with_one_pairing() -> None:
    recipe = Recipe(RecipeConfig(mixup_alpha=0.4, noise_std=0.0), 3, seed=0)
    x = torch.arange(6.0).reshape(3, 2)
    targets = torch.eye(3)
    mixed_x, mixed_t, mixed_teacher = recipe.augment(x, targets, targets.clone())
    assert torch.equal(mixed_t, mixed_teacher)
    # Each mixed row is lam * row_i + (1 - lam) * row_perm(i): recover lam and perm from the targets.
    lam = mixed_t.max(1).values
    assert torch.all((lam > 0) & (lam <= 1))
    np.testing.assert_allclose(mixed_t.sum(1).numpy(), 1, atol=1e-6)
    assert torch.allclose(mixed_t @ x, mixed_x)


def test_distillation_without_a_teacher_is_refused() -> None:
    recipe = Recipe(RecipeConfig(distill_weight=0.5), 3, seed=0)
    with pytest.raises(ConfigError, match="teacher"):
        recipe.loss(
            torch.nn.Linear(2, 3), {"x": torch.zeros(4, 2), "label": torch.zeros(4, dtype=torch.long)}
        )


def test_evaluate_reports_model_teacher_and_baseline(prepared: Path) -> None:
    run = make_run()
    net = model.build(run)
    metrics = evaluate.evaluate(run, net, prepared / "data.h5", prepared / "probs.h5")
    assert set(metrics) >= {
        "accuracy",
        "macro_f1",
        "log_loss",
        "teacher_accuracy",
        "teacher_macro_f1",
        "teacher_log_loss",
        "majority_class_accuracy",
    }
    assert metrics["n_test"] == 36 and metrics["teacher_accuracy"] > metrics["majority_class_accuracy"]
    assert metrics["accuracy_gap_to_teacher"] == pytest.approx(
        metrics["teacher_accuracy"] - metrics["accuracy"]
    )
