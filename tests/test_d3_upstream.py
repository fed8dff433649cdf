"""D3 against upstream's own files (``../shared/upstream/d3``): run folders, networks, diffusion, round trip.

Every expected number below was written by upstream's code (D3-DNA-Discrete-Diffusion ``train_n_sample/`` at
7d5b2c4), never by ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from tests.upstream_fixtures import upstream_dir
from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.d3 import checkpoint, reference_forward, runfolder
from tf2lightning.families.d3.diffusion import (
    GeometricNoise,
    UniformGraph,
    denoise_probs,
    loss_per_sequence,
    step_probs,
)
from tf2lightning.families.d3.model import build, model_shape
from tf2lightning.run import Run

CASES = [(d, a) for d in ("deepstarr", "mpra", "promoter") for a in ("Tran", "Conv")]


def fixture(dataset: str, arch: str) -> tuple[Run, dict[str, np.ndarray], dict]:
    folder = upstream_dir("d3", f"{dataset}_{arch}")
    run = Run("d3", dataset, arch, arch={"legacy_model": str(folder)}, threads=1)
    with np.load(folder / "probe.npz") as probe:
        arrays = dict(probe)
    return run, arrays, runfolder.load_checkpoint(runfolder.resolve(folder)[1])


def loaded(run: Run, ckpt: dict, which: str) -> torch.nn.Module:
    model = build(run)
    model.load_state_dict(runfolder.weights_of(ckpt, which, "fixture"), strict=True)
    return model.eval()


def close(got: np.ndarray, want: np.ndarray, tol: float = 1e-5) -> None:
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@pytest.mark.parametrize(("dataset", "arch"), CASES)
def test_upstream_checkpoint_loads_strictly_and_reproduces_upstream_log_scores(
    dataset: str, arch: str
) -> None:
    run, probe, ckpt = fixture(dataset, arch)
    model = build(run)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == runfolder.trainable_names(
        ckpt["model"]
    )
    inputs = [torch.from_numpy(probe[k]) for k in ("x", "labels", "sigma")]
    for which in ("model", "ema"):
        with torch.no_grad():
            out = loaded(run, ckpt, which)(*inputs).numpy()
        close(out, probe[f"log_score_{which}"])
    params = {k: v.numpy() for k, v in runfolder.weights_of(ckpt, "ema", "fixture").items()}
    numpy_out = reference_forward.log_score(
        model_shape(run), params, probe["x"], probe["labels"], probe["sigma"]
    )
    close(numpy_out, probe["log_score_ema"])


@pytest.mark.parametrize(("dataset", "arch"), CASES)
def test_loss_analytic_step_and_denoiser_equal_upstream(dataset: str, arch: str) -> None:
    run, probe, ckpt = fixture(dataset, arch)
    graph, noise = UniformGraph(), GeometricNoise(1e-4, 20.0)
    t = torch.from_numpy(probe["loss_t"])
    np.testing.assert_allclose(noise.total(t).numpy(), probe["loss_sigma"], rtol=1e-6)
    np.testing.assert_allclose(noise.rate(t).numpy(), probe["loss_dsigma"], rtol=1e-6)
    with torch.no_grad():
        for which in ("model", "ema"):
            model = loaded(run, ckpt, which)
            x0, labels, xt = (
                torch.from_numpy(probe[k]) for k in ("loss_x0", "loss_labels", "loss_perturbed")
            )
            loss = loss_per_sequence(model, graph, noise, x0, labels, None, t=t, perturbed=xt).numpy()
            np.testing.assert_allclose(loss, probe[f"loss_{which}"], rtol=1e-5)
        x, labels = torch.from_numpy(probe["step_x"]), torch.from_numpy(probe["step_labels"])
        step_t, step_dt = float(probe["step_t"][0, 0]), float(probe["step_dt"])
        close(
            step_probs(model, graph, noise, x, labels, step_t, step_dt, "analytic").numpy(),
            probe["analytic_probs"],
        )
        denoised = denoise_probs(model, graph, noise, x, labels, float(probe["denoise_t"][0, 0])).numpy()
        close(denoised, probe["denoise_probs"])


def test_run_folder_config_and_checkpoint_rules(tmp_path: Path) -> None:
    folder = upstream_dir("d3", "deepstarr_Tran")
    assert runfolder.resolve(folder) == (folder, folder / "checkpoints" / "checkpoint_2.pth")
    chosen = folder / "checkpoints" / "checkpoint_2.pth"
    assert runfolder.resolve(chosen) == (folder, chosen)
    run = Run("d3", "deepstarr", "Tran", arch={"legacy_model": str(folder), "hidden_size": 32})
    with pytest.raises(ConfigError, match=r"hidden_size is 32.*has 24"):
        build(run)
    # the noise too: a key that contradicts hydra/config.yaml (geometric, sigma 1e-4..20) names both
    for key, value, theirs in (("noise", "loglinear", "geometric"), ("sigma_max", 10.0, "20")):
        contradicting = Run("d3", "deepstarr", "Tran", arch={"legacy_model": str(folder), key: value})
        with pytest.raises(ConfigError, match=rf"Tran\.{key} is {value!r}.*config\.yaml has '?{theirs}"):
            build(contradicting)
    agreeing = {"legacy_model": str(folder), "noise": "geometric", "sigma_min": 1e-4, "sigma_max": 20}
    build(Run("d3", "deepstarr", "Tran", arch=agreeing))
    with pytest.raises(FormatError, match="not an upstream D3 run folder"):
        runfolder.resolve(tmp_path)
    # the numpy 1.x name of the pickled learning rate is on the allow-list too
    names = {entry[1] for entry in runfolder.numpy_globals() if isinstance(entry, tuple)}
    assert names == {"numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar"}


@pytest.mark.parametrize(("dataset", "arch"), [("deepstarr", "Tran"), ("mpra", "Conv")])
def test_round_trip_gives_a_file_upstreams_loader_reads_strictly(
    tmp_path: Path, dataset: str, arch: str
) -> None:
    """to-lightning -> to-original: upstream's ``load_model_local`` steps (strict model load, EMA copy)."""
    run, probe, ckpt = fixture(dataset, arch)
    folder = runfolder.resolve(Path(run.arch["legacy_model"]))[0]
    checkpoint.convert_file("to-lightning", folder, tmp_path / "c.ckpt")
    checkpoint.convert_file("to-original", tmp_path / "c.ckpt", tmp_path / "checkpoint.pth")
    back = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    assert back.keys() == ckpt.keys() and back["step"] == ckpt["step"]
    model = build(run)
    model.load_state_dict(back["model"], strict=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(back["ema"]["shadow_params"]) == len(trainable)
    with torch.no_grad():
        for param, shadow in zip(trainable, back["ema"]["shadow_params"], strict=True):
            param.copy_(shadow)
        out = model.eval()(*(torch.from_numpy(probe[k]) for k in ("x", "labels", "sigma"))).numpy()
    close(out, probe["log_score_ema"])
    groups = back["optimizer"]["param_groups"]
    assert len(groups[0]["params"]) == len(ckpt["model"]) - 1 + 1  # model parameters + noise.empty
    assert len(back["optimizer"]["state"]) == len(ckpt["optimizer"]["state"])


@pytest.mark.parametrize(("dataset", "arch"), [("promoter", "Tran"), ("mpra", "Conv")])
def test_exports_of_an_upstream_run_return_upstream_log_scores(
    tmp_path: Path, dataset: str, arch: str
) -> None:
    from tf2lightning.stages.weights import convert_weights, export_model

    run, probe, _ = fixture(dataset, arch)
    convert_weights(run, Path(run.arch["legacy_model"]), "pth", tmp_path / "w.safetensors")
    export_model(run, tmp_path / "w.safetensors", tmp_path / "m.ts", tmp_path / "m.onnx")
    arrays = [probe[k] for k in ("x", "labels", "sigma")]
    with torch.no_grad():
        scripted = torch.jit.load(str(tmp_path / "m.ts"))(*map(torch.from_numpy, arrays)).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    feeds = {node.name: a for node, a in zip(session.get_inputs(), arrays, strict=True)}
    (onnx_out,) = session.run(None, feeds)
    close(scripted, probe["log_score_ema"])
    close(onnx_out, probe["log_score_ema"])


@pytest.mark.parametrize(("dataset", "name"), [("deepstarr", "DeepSTARR_DeepSTARR"), ("mpra", "mpra_mpra")])
def test_upstream_oracles_load_and_reproduce_their_outputs_and_metric(dataset: str, name: str) -> None:
    from tf2lightning.families.d3.oracle import predict, read_upstream_oracle

    folder = upstream_dir("d3", "oracles")
    oracle = read_upstream_oracle(folder / f"oracle_{name}_data.ckpt")
    with np.load(folder / "probe.npz") as probe:
        arrays = dict(probe)
    codes = {k: arrays[f"{dataset}_x_{k}"].argmax(1) for k in ("test", "gen")}
    on_test, on_gen = predict(oracle, codes["test"]), predict(oracle, codes["gen"])
    close(on_test, arrays[f"{dataset}_oracle_test"])
    close(on_gen, arrays[f"{dataset}_oracle_gen"])
    np.testing.assert_allclose(np.mean((on_test - on_gen) ** 2), arrays[f"{dataset}_sp_mse"], rtol=1e-5)


@pytest.mark.parametrize("dataset", ["deepstarr", "mpra", "promoter"])
def test_upstream_data_files_convert_as_upstream_reads_them(tmp_path: Path, dataset: str) -> None:
    from tf2lightning.core.hdf5_store import read_all, read_attrs, split_indices
    from tf2lightning.families.d3 import data

    root = upstream_dir("d3", "data")
    run = Run("d3", dataset, "Tran")
    data.convert(run, root / dataset, tmp_path / "data.h5")
    table = read_all(tmp_path / "data.h5", ("seq", "activity"))
    with np.load(root / "expected.npz") as expected:
        for split, rows in split_indices(tmp_path / "data.h5").items():
            np.testing.assert_array_equal(table["seq"][rows], expected[f"{dataset}_{split}_x"])
            np.testing.assert_array_equal(table["activity"][rows], expected[f"{dataset}_{split}_y"])
    assert read_attrs(tmp_path / "data.h5")["n_unknown"] == 0


def test_n_positions_are_counted_and_a_missing_test_split_is_allowed(tmp_path: Path) -> None:
    import h5py

    from tf2lightning.core.hdf5_store import read_attrs, split_indices
    from tf2lightning.families.d3 import data

    hot = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (3, 200))]
    hot[1, 7] = 0  # an N
    with h5py.File(tmp_path / "mpra_data.h5", "w") as f:
        for split in ("train", "valid"):
            f[f"x_{split}"], f[f"y_{split}"] = hot, np.zeros((3, 3), np.float32)
    data.convert(Run("d3", "mpra", "Conv"), tmp_path, tmp_path / "data.h5")
    attrs = read_attrs(tmp_path / "data.h5")
    assert attrs["n_unknown"] == 2 and attrs["missing_splits"] == ["test"]
    assert len(split_indices(tmp_path / "data.h5").get("test", [])) == 0


def test_lightning_resumes_an_upstream_checkpoint(tmp_path: Path) -> None:
    """to-lightning of upstream's step-2 checkpoint, then ``Trainer.fit(ckpt_path=...)`` takes step 3."""
    import lightning as L
    from torch.utils.data import DataLoader

    from tf2lightning.families.d3.lit import make_module

    run, _, ckpt = fixture("mpra", "Tran")
    run = Run("d3", "mpra", "Tran", arch=run.arch, train={"warmup": 2, "batch_size": 2}, threads=1)
    folder = runfolder.resolve(Path(run.arch["legacy_model"]))[0]
    checkpoint.convert_file("to-lightning", folder, tmp_path / "c.ckpt")
    with np.load(upstream_dir("d3", "data") / "expected.npz") as expected:
        x, y = torch.from_numpy(expected["mpra_train_x"]), torch.from_numpy(expected["mpra_train_y"])
    loader = DataLoader([{"seq": x[i], "activity": y[i]} for i in range(len(x))], batch_size=2)
    module = make_module(run, build(run))
    trainer = L.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader, ckpt_path=tmp_path / "c.ckpt")
    assert trainer.global_step == 3
    state = trainer.optimizers[0].state_dict()
    assert len(state["param_groups"][0]["params"]) == len(ckpt["model"]) - 1 + 1  # inv_freq out, empty in
    name = "vocab_embed.embedding"
    moved = module.net.state_dict()[name] - ckpt["model"][name]
    assert moved.abs().max() > 0  # one more AdamW step from upstream's state


def test_to_original_into_a_run_folder_writes_upstreams_hydra_config(tmp_path: Path) -> None:
    """Upstream's loaders read ``<run>/hydra/config.yaml`` beside ``checkpoints/``: ``to-original`` writes
    the upstream run's own config (carried by ``to-lightning``); a contradicting config stops it."""
    import yaml

    folder = upstream_dir("d3", "mpra_Conv")
    checkpoint.convert_file("to-lightning", folder, tmp_path / "c.ckpt")
    target = tmp_path / "run" / "checkpoints" / "checkpoint.pth"
    checkpoint.convert_file("to-original", tmp_path / "c.ckpt", target)
    assert runfolder.read_config(tmp_path / "run") == runfolder.read_config(folder)
    run = Run("d3", "mpra", "Conv", arch={"legacy_model": str(tmp_path / "run")})
    build(run).load_state_dict(runfolder.load_checkpoint(target)["model"], strict=True)
    other = tmp_path / "other"
    config = runfolder.read_config(folder)
    config["model"]["hidden_size"] = 48
    (other / "hydra").mkdir(parents=True)
    (other / "hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(FormatError, match="contradicts the checkpoint"):
        checkpoint.convert_file("to-original", tmp_path / "c.ckpt", other / "checkpoints" / "checkpoint.pth")
    assert not (other / "checkpoints").exists()


def test_to_original_of_a_model_trained_here_writes_an_upstream_config(tmp_path: Path) -> None:
    """A Lightning checkpoint of ours (no upstream run behind it): ``to-original`` into a run folder writes
    our run's config in upstream's schema, from which the checkpoint reloads strictly."""
    from tf2lightning.families.d3.lit import make_module

    sizes = {"hidden_size": 16, "cond_dim": 16, "n_blocks": 2, "n_heads": 2, "conv_width": 8}
    arch = {**sizes, "graph": "uniform", "noise": "geometric", "sigma_min": 1e-4, "sigma_max": 20.0}
    run = Run("d3", "deepstarr", "Conv", arch=arch, train={"batch_size": 4, "ema_decay": 0.9}, seed=1)
    module = make_module(run, build(run))
    lightning = {
        "state_dict": module.state_dict(),
        "optimizer_states": [module.configure_optimizers().state_dict()],
        "global_step": 0,
    }
    module.on_save_checkpoint(lightning)
    torch.save(lightning, tmp_path / "last.ckpt")
    target = tmp_path / "run" / "checkpoints" / "checkpoint.pth"
    checkpoint.convert_file("to-original", tmp_path / "last.ckpt", target)
    config = runfolder.read_config(tmp_path / "run")
    assert {k: config["model"][k] for k in ("hidden_size", "cond_dim", "n_blocks", "n_heads")} == {
        k: v for k, v in sizes.items() if k != "conv_width"
    }
    assert config["graph"]["type"] == "uniform" and config["noise"]["type"] == "geometric"
    assert config["model"]["length"] == 249 and config["training"]["ema"] == 0.9
    reread = Run("d3", "deepstarr", "Conv", arch={"legacy_model": str(tmp_path / "run")})
    build(reread).load_state_dict(runfolder.load_checkpoint(target)["model"], strict=True)
    assert checkpoint.ours_only(runfolder.load_checkpoint(target), config) == []


def test_to_original_names_what_upstream_cannot_load() -> None:
    """``kmer_kernel``'s module and log-linear noise are ours: ``to-original`` warns that upstream fails."""
    model = build(Run("d3", "deepstarr", "Tran", arch={"hidden_size": 16, "cond_dim": 16, "kmer_kernel": 3}))
    original = {"model": model.state_dict()}
    assert checkpoint.ours_only(original, {"noise": {"type": "geometric"}}) == ["ours_kmer_conv"]
    found = checkpoint.ours_only(original, {"noise": {"type": "loglinear"}})
    assert found[0] == "ours_kmer_conv" and "'loglinear'" in found[1]
