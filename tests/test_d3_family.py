"""The D3 family: grammar, upstream files, the SEDD loss, and plain loop vs Lightning parity (torch only)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tf2lightning.core.torch_weights import load_mapped, target_spec
from tf2lightning.errors import FormatError
from tf2lightning.families.d3 import checkpoint, legacy, upstream, weights
from tf2lightning.families.d3.datasets import KINDS, label_shape
from tf2lightning.families.d3.diffusion import (
    AbsorbingGraph,
    GeometricNoise,
    UniformGraph,
    denoise_probs,
    step_probs,
)
from tf2lightning.families.d3.lit import make_module
from tf2lightning.families.d3.model import build, probe_inputs
from tf2lightning.families.d3.synthetic import encode, generate, reverse_complement, signal_track
from tf2lightning.families.d3.training import (
    Settings,
    accumulated_step,
    noise_parameter,
    plain_step,
    trainable,
)
from tf2lightning.run import Run
from tf2lightning.stages.parity import check_parity
from tf2lightning.stages.weights import convert_weights

ARCH = {
    "hidden_size": 16,
    "cond_dim": 16,
    "n_blocks": 2,
    "n_heads": 2,
    "dropout": 0.0,
    "conv_width": 8,
    "kmer_kernel": 5,
    "legacy_steps": 2,
    "legacy_batch_size": 4,
}
TRAIN = {"lr": 1e-2, "warmup": 3, "ema_decay": 0.9, "gradient_clip": 0.5, "batch_size": 4}


def make_run(arch: str = "Tran", graph: str = "uniform", dataset: str = "deepstarr") -> Run:
    sizes = {"n_train": 8, "n_valid": 8, "n_test": 8}
    return Run("d3", dataset, arch, dataset=sizes, arch={**ARCH, "graph": graph}, train=TRAIN, seed=5)


def test_grammar_sets_activity_from_counts_and_orientation() -> None:
    kind = KINDS["deepstarr"]
    planted = generate(kind, 200, np.random.default_rng(0))
    expected = np.zeros_like(planted.activity)
    for row, j, start, forward in planted.copies:
        motif = encode(kind.motifs[j])
        found = planted.seqs[row, start : start + len(motif)]
        assert np.array_equal(found, motif if forward else reverse_complement(motif))
        expected[row, j] += 1.0 if forward else 0.5
    extra = planted.activity - expected  # spacing bonus (0 or 0.5) plus small noise
    assert np.all((np.abs(extra) < 0.3) | (np.abs(extra - 0.5) < 0.3))
    assert np.array_equal(generate(kind, 200, np.random.default_rng(0)).seqs, planted.seqs)


def test_promoter_signal_sums_to_activity() -> None:
    kind = KINDS["promoter"]
    planted = generate(kind, 5, np.random.default_rng(1))
    np.testing.assert_allclose(signal_track(kind, planted).sum(1), planted.activity[:, 0], atol=1e-4)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_upstream_files_round_trip(tmp_path: Path, name: str) -> None:
    run = make_run(dataset=name)
    legacy.write_data(run, tmp_path)
    codes, activity = upstream.read_split(KINDS[name], tmp_path, "valid")
    assert codes.shape == (8, KINDS[name].length) and activity.shape == (8, *label_shape(KINDS[name]))
    assert codes.max() <= 3


def test_upstream_reader_names_the_bad_array(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "DeepSTARR_data.h5", "w") as f:
        f["X_train"] = np.zeros((2, 4, 249), np.float32)  # no nucleotide set
        f["Y_train"] = np.zeros((2, 2), np.float32)
        f["X_valid"] = np.full((2, 4, 249), 0.5, np.float32)  # not one-hot
        f["Y_valid"] = np.zeros((2, 2), np.float32)
    codes, _ = upstream.read_split(KINDS["deepstarr"], tmp_path, "train")  # N reads as A, as upstream
    assert not codes.any()
    with pytest.raises(FormatError, match=r"X_valid: row 0 position 0 is not one-hot"):
        upstream.read_split(KINDS["deepstarr"], tmp_path, "valid")
    with pytest.raises(FormatError, match="no dataset 'X_test'"):
        upstream.read_split(KINDS["deepstarr"], tmp_path, "test")


@pytest.mark.parametrize("graph", [AbsorbingGraph(), UniformGraph()])
def test_score_entropy_is_zero_at_the_true_score_and_positive_elsewhere(graph) -> None:
    n = graph.n_tokens
    sigma = torch.tensor([0.3, 1.7])
    x0 = torch.tensor([[0, 2], [3, 1]])
    xt = torch.tensor([[n - 1, 2], [3, 0]]) if graph.absorbing else torch.tensor([[0, 2], [1, 0]])
    # true ratios p_t(y | x0) / p_t(xt | x0) from the transition kernel exp(sigma Q)
    keep = torch.exp(-sigma)[:, None, None]
    if graph.absorbing:
        kernel = keep * torch.nn.functional.one_hot(x0, n) + (1 - keep) * torch.nn.functional.one_hot(
            torch.full_like(x0, n - 1), n
        )
    else:
        kernel = keep * torch.nn.functional.one_hot(x0, n) + (1 - keep) / n
    truth = (kernel / kernel.gather(-1, xt[..., None])).clamp(min=1e-30).log()
    at_truth = graph.score_entropy(truth, sigma, xt, x0)
    assert at_truth.abs().max() < 1e-5
    perturbed = graph.score_entropy(truth + 0.3 * torch.randn(truth.shape), sigma, xt, x0)
    assert (perturbed >= -1e-6).all() and perturbed.sum() > 1e-3


def _plain_run(run: Run, steps: int, seqs: torch.Tensor, labels: torch.Tensor):
    torch.manual_seed(run.seed)
    model = build(run)
    settings = Settings.from_run(run)
    optimizer = settings.optimizer([*model.parameters(), noise_parameter()])
    shadow = [p.detach().clone() for p in trainable(model)]
    losses = [plain_step(model, optimizer, shadow, settings, seqs, labels, s) for s in range(steps)]
    return model, optimizer, shadow, settings, losses


class _Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _assert_same_weights(model, shadow: list[torch.Tensor], module) -> list[torch.Tensor]:
    """The plain loop's weights and EMA equal the module's (1e-6); returns the EMA tensors it followed."""
    for (name, p), q in zip(model.named_parameters(), module.net.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=0, msg=name)
    followed = [
        e for e, p in zip(module.ema.parameters(), module.net.parameters(), strict=True) if p.requires_grad
    ]
    for s, q in zip(shadow, followed, strict=True):
        torch.testing.assert_close(q, s, atol=1e-6, rtol=0)
    return followed


def _trainer(max_steps: int, recorder: _Losses, **extra: object) -> L.Trainer:
    """A bare Trainer that clips as ``TRAIN`` says and records each batch's loss."""
    return L.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=TRAIN["gradient_clip"],
        limit_val_batches=0,
        callbacks=[recorder],
        **extra,
    )


@pytest.mark.parametrize(("arch", "graph"), [("Tran", "absorbing"), ("Conv", "uniform"), ("Tran", "uniform")])
def test_plain_step_equals_lightning_step_after_resume(tmp_path: Path, arch: str, graph: str) -> None:
    """2 plain steps -> original checkpoint -> Lightning checkpoint; step 3 in both loops agrees."""
    run = make_run(arch, graph)
    codes, activity = (torch.from_numpy(a) for a in upstream_batch(run))
    model, optimizer, shadow, settings, _ = _plain_run(run, 2, codes, activity)
    legacy.write_run_folder(tmp_path, model, shadow, optimizer, 2, settings, run, 4)
    checkpoint.convert_file("to-lightning", tmp_path, tmp_path / "converted.ckpt")
    plain_loss = plain_step(model, optimizer, shadow, settings, codes, activity, 2)

    module = make_module(run, build(run))
    recorder = _Losses()
    trainer = _trainer(3, recorder)
    loader = DataLoader([{"seq": codes[i], "activity": activity[i]} for i in range(len(codes))], batch_size=4)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=tmp_path / "converted.ckpt")
    assert trainer.global_step == 3 and len(recorder.losses) == 1
    assert abs(recorder.losses[0] - plain_loss) <= 1e-6
    followed = _assert_same_weights(model, shadow, module)
    # the Lightning checkpoint trained here converts to upstream's layout: strict model, EMA list, optimizer
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint.convert_file("to-original", tmp_path / "last.ckpt", tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert sorted(back) == ["ema", "model", "optimizer", "step"] and back["step"] == 3
    build(run).load_state_dict(back["model"], strict=True)
    for s, q in zip(back["ema"]["shadow_params"], followed, strict=True):
        assert torch.equal(s, q)
    assert len(back["optimizer"]["param_groups"][0]["params"]) == len(list(model.parameters())) + 1


def test_accumulation_in_lightning_equals_the_plain_loop() -> None:
    """``accumulate_grad_batches: 2`` (upstream's ``accum``): 2 optimizer steps over 4 micro-batches of 2 in
    the plain loop and in Lightning give the same losses, weights and EMA."""
    run = make_run("Tran", "uniform")
    train = {**TRAIN, "accumulate_grad_batches": 2, "batch_size": 2}
    run = Run("d3", run.dataset_name, run.arch_name, dataset=run.dataset, arch=run.arch, train=train, seed=5)
    codes, activity = (torch.from_numpy(a) for a in upstream_batch(run))
    torch.manual_seed(run.seed)
    model = build(run)
    start = build(run)
    start.load_state_dict(model.state_dict())
    settings = Settings.from_run(run)
    assert settings.accum == 2
    optimizer = settings.optimizer([*model.parameters(), noise_parameter()])
    shadow = [p.detach().clone() for p in trainable(model)]
    halves = [(codes[i : i + 2], activity[i : i + 2]) for i in (0, 2)]
    plain = [accumulated_step(model, optimizer, shadow, settings, halves, s) for s in range(2)]
    with pytest.raises(ValueError, match="1 micro-batches"):
        plain_step(model, optimizer, shadow, settings, codes, activity, 2)

    module = make_module(run, start)
    recorder = _Losses()
    trainer = _trainer(2, recorder, accumulate_grad_batches=2)
    loader = DataLoader([{"seq": codes[i], "activity": activity[i]} for i in range(len(codes))], batch_size=2)
    trainer.fit(module, train_dataloaders=loader)
    assert trainer.global_step == 2 and len(recorder.losses) == 4
    # the Trainer hands callbacks each micro-batch's loss already divided by accum
    lit_means = [recorder.losses[i] + recorder.losses[i + 1] for i in (0, 2)]
    np.testing.assert_allclose(lit_means, plain, rtol=0, atol=1e-5)
    _assert_same_weights(model, shadow, module)


def upstream_batch(run: Run) -> tuple[np.ndarray, np.ndarray]:
    planted = generate(KINDS[run.dataset_name], 4, np.random.default_rng(9))
    return planted.seqs.astype(np.int64), planted.activity


def test_checkpoint_round_trip_is_exact(tmp_path: Path) -> None:
    run = make_run("Conv")
    codes, activity = (torch.from_numpy(a) for a in upstream_batch(run))
    model, optimizer, shadow, settings, _ = _plain_run(run, 2, codes, activity)
    source = legacy.write_run_folder(tmp_path, model, shadow, optimizer, 2, settings, run, 4)
    checkpoint.convert_file("to-lightning", source, tmp_path / "a.ckpt")
    checkpoint.convert_file("to-original", tmp_path / "a.ckpt", tmp_path / "b.pth")
    a = torch.load(source, weights_only=True)
    b = torch.load(tmp_path / "b.pth", weights_only=True)
    assert a.keys() == b.keys() and a["step"] == b["step"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k])
    assert all(
        torch.equal(x, y) for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"], strict=True)
    )
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for key, state in a["optimizer"]["state"].items():
        assert all(torch.equal(v, b["optimizer"]["state"][key][n]) for n, v in state.items())


def test_converted_weights_give_identical_outputs(tmp_path: Path) -> None:
    run = make_run("Tran")
    codes, activity = (torch.from_numpy(a) for a in upstream_batch(run))
    model, optimizer, shadow, settings, _ = _plain_run(run, 2, codes, activity)
    legacy.write_run_folder(tmp_path, model, shadow, optimizer, 2, settings, run, 4)
    arrays = weights.weight_map(run).apply(weights.read_source(run, tmp_path), target_spec(model))
    port = load_mapped(build(run), arrays).eval()
    inputs = [torch.from_numpy(a) for a in probe_inputs(run, 3, 0).values()]
    ema = build(run)
    with torch.no_grad():
        for param, value in zip(trainable(ema), shadow, strict=True):
            param.copy_(value)
        assert torch.equal(port(*inputs), ema.eval()(*inputs))
        # the EMA differs from the raw weights after 2 steps, so the choice matters
        assert not torch.equal(model.eval()(*inputs), port(*inputs))


def test_read_source_rejects_a_foreign_checkpoint(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "checkpoint.pth")
    with pytest.raises(FormatError, match="lacks"):
        weights.read_source(make_run(), tmp_path / "checkpoint.pth")


@pytest.mark.parametrize("arch", ["Tran", "Conv"])
def test_parity_stage_against_the_numpy_reference_of_a_plain_loop_run(tmp_path: Path, arch: str) -> None:
    """plain loop -> run folder -> reference (NumPy, not our module) -> convert_weights -> check_parity,
    with a row per block (DDiT block or dilated convolution) beside the log-scores."""
    run = Run("d3", "mpra", arch, arch={**ARCH, "kmer_kernel": 1}, train=TRAIN, parity={"n_probe": 2}, seed=5)
    codes, activity = (torch.from_numpy(a) for a in upstream_batch(run))
    model, optimizer, shadow, settings, _ = _plain_run(run, 2, codes, activity)
    legacy.write_run_folder(tmp_path, model, shadow, optimizer, 2, settings, run, 4)
    legacy.reference(run, tmp_path, tmp_path, tmp_path / "reference.h5")
    convert_weights(run, tmp_path, "pth", tmp_path / "pth.safetensors")
    check_parity(run, tmp_path / "reference.h5", [tmp_path / "pth.safetensors"], tmp_path / "parity.tsv")
    table = (tmp_path / "parity.tsv").read_text()
    assert table.startswith("# verdict: PASS\n") and "log_score" in table
    rows = [line.split("\t") for line in table.splitlines() if line.startswith("pth")]
    layer_rows = [r for r in rows if "layer" in r]
    assert len(layer_rows) == (2 if arch == "Tran" else 20), table
    assert all("true" in r for r in layer_rows), table


class _DriftedAtCurrentToken(torch.nn.Module):
    """Fixed log-scores, with 120 (past float32 ``exp``) at the current token where ``drift`` is set."""

    def __init__(self, log_score: torch.Tensor, drift: torch.Tensor) -> None:
        super().__init__()
        self.log_score, self.drift = log_score, drift

    def forward(self, x: torch.Tensor, labels: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        at_x = torch.where(self.drift, 120.0, self.log_score.gather(-1, x[..., None]).squeeze(-1))
        return self.log_score.scatter(-1, x[..., None], at_x[..., None])


def test_analytic_step_and_denoiser_survive_a_drifted_current_token_score() -> None:
    """Where upstream's float32 step overflows, ours gives upstream's probabilities up to a per-position
    factor (float64 evaluation of the same formula), so a Gumbel draw is upstream's; elsewhere exactly."""
    graph, noise = UniformGraph(), GeometricNoise(1e-4, 20.0)
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (2, 7), generator=gen)
    drift = torch.zeros(2, 7, dtype=torch.bool)
    drift[0, 2] = drift[1, 5] = True
    model = _DriftedAtCurrentToken(torch.randn(2, 7, 4, generator=gen), drift)
    labels = torch.zeros(2, 2)
    with torch.no_grad():
        got = step_probs(model, graph, noise, x, labels, 0.7, 0.05, "analytic").double()
        den = denoise_probs(model, graph, noise, x, labels, 1e-5).double()
        t = torch.full((2,), 0.7, dtype=torch.float64)
        log_score = model(x, labels, noise.total(t.float())).double()
        want = graph.analytic_probs(x, log_score.exp(), noise.total(t), noise.total(t - 0.05))
        sigma0 = noise.total(torch.full((2,), 1e-5, dtype=torch.float64))
        want_den = graph.analytic_probs(x, log_score.exp(), sigma0, torch.zeros_like(sigma0))
        upstream_f32 = graph.analytic_probs(
            x, log_score.float().exp(), noise.total(t.float()), noise.total(t.float() - 0.05)
        )
    assert not torch.isfinite(upstream_f32[drift]).any()  # what plain exp() gives in float32
    for ours, ref in ((got, want), (den, want_den)):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(
            ours / ours.sum(-1, keepdim=True), ref / ref.sum(-1, keepdim=True), rtol=1e-5, atol=1e-6
        )
        torch.testing.assert_close(ours[~drift], ref[~drift], rtol=1e-5, atol=0)


@pytest.mark.parametrize("arch", ["Tran", "Conv"])
def test_bf16_mixed_training_on_cpu_tracks_fp32(arch: str) -> None:
    """``train.precision: bf16-mixed`` (the GPU default): the first step's loss is fp32's within bf16's
    rounding, every loss is finite and the trained and EMA weights move."""
    run = make_run(arch)
    codes, activity = (torch.from_numpy(a) for a in upstream_batch(run))
    loader = DataLoader([{"seq": codes[i], "activity": activity[i]} for i in range(len(codes))], batch_size=4)
    losses = {}
    for precision in ("32-true", "bf16-mixed"):
        torch.manual_seed(run.seed)
        module = make_module(run, build(run))
        before = {k: v.clone() for k, v in module.state_dict().items()}
        recorder = _Losses()
        _trainer(3, recorder, precision=precision).fit(module, train_dataloaders=loader)
        for part in ("net.", "ema."):
            moved = [
                k
                for k, v in module.state_dict().items()
                if k.startswith(part) and not torch.equal(v, before[k])
            ]
            assert moved, f"no {part} weight moved under {precision}"
        assert np.isfinite(recorder.losses).all() and len(recorder.losses) == 3
        losses[precision] = recorder.losses
    assert abs(losses["bf16-mixed"][0] - losses["32-true"][0]) <= 0.02 * abs(losses["32-true"][0])
