"""The source side of D3: the upstream dataset files, the plain PyTorch loop and the reference outputs.

The plain loop is upstream's ``run_train.py`` in miniature: a cycling shuffled loader over the upstream
file, AdamW over the model's and the noise's parameters with linear warm-up, gradient clipping and an EMA
of the trainable weights. It leaves an upstream run folder (``runfolder``): ``hydra/config.yaml`` in
upstream's schema and ``checkpoints/checkpoint_1.pth`` = ``{"model", "ema", "optimizer", "step"}``.

The reference (what parity compares the port with) never comes from our own module:
- an upstream run folder with ``probe.npz`` (upstream's own outputs, as the golden fixtures ship): its
  inputs ``x``, ``labels``, ``sigma`` and ``log_score_ema``/``log_score_model``;
- otherwise ``reference_forward``: an independent NumPy evaluation of upstream's forward, straight from the
  checkpoint's tensors (no ``nn.Module``), itself tested against upstream's outputs on the six fixtures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import yaml

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.reference_file import write_reference_arrays
from tf2lightning.errors import FormatError
from tf2lightning.families.d3 import reference_forward, runfolder, upstream
from tf2lightning.families.d3.datasets import dataset_kind
from tf2lightning.families.d3.model import build, model_shape, probe_inputs
from tf2lightning.families.d3.synthetic import generate, signal_track
from tf2lightning.families.d3.training import Settings, accumulated_step, noise_parameter, trainable
from tf2lightning.run import Run

log = logging.getLogger(__name__)
PROBE = runfolder.PROBE


def write_data(run: Run, out_dir: Path) -> None:
    """The synthetic dataset in the upstream layout; split ``i`` from ``default_rng((seed, i))``."""
    kind = dataset_kind(run)
    splits = {}
    for index, split in enumerate(upstream.SPLITS):
        planted = generate(kind, int(run.dataset[f"n_{split}"]), np.random.default_rng((run.seed, index)))
        signal = signal_track(kind, planted) if kind.layout == "promoter" else None
        splits[split] = (planted.seqs, planted.activity, signal)
    upstream.write_split_files(kind, Path(out_dir), splits)


def legacy_settings(run: Run) -> Settings:
    """The plain loop's settings: ``run.arch`` ``legacy_*`` keys, falling back to ``run.train``."""
    keys = ("lr", "warmup", "ema_decay", "gradient_clip", "weight_decay", "accumulate_grad_batches")
    train = {k: run.arch.get(f"legacy_{k}", run.train.get(k)) for k in keys}
    return Settings.from_run(run, {k: v for k, v in train.items() if v is not None})


def cycle_batches(n: int, batch_size: int, seed: int):
    """Index batches of a reshuffled pass over ``n`` examples, forever (the upstream ``cycle_loader``)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def train_model(run: Run, data_dir: Path, out_dir: Path) -> None:
    """Run ``run.arch["legacy_steps"]`` plain-loop steps; leave a run folder and ``history.json``."""
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    seqs, activity = upstream.read_split(dataset_kind(run), data_dir, "train")
    model = build(run)
    settings = legacy_settings(run)
    optimizer = settings.optimizer([*model.parameters(), noise_parameter()])
    shadow = [p.detach().clone() for p in trainable(model)]
    batch_size = min(int(run.arch.get("legacy_batch_size", 32)), len(seqs))
    batches = cycle_batches(len(seqs), batch_size, run.seed)
    losses = []
    n_steps = int(run.arch["legacy_steps"])
    for step in range(n_steps):
        micro = [next(batches) for _ in range(settings.accum)]
        pairs = [(torch.from_numpy(seqs[idx]), torch.from_numpy(activity[idx])) for idx in micro]
        losses.append(accumulated_step(model, optimizer, shadow, settings, pairs, step))
        if step % 50 == 0:
            log.info("step %d loss %.4f", step, losses[-1])
    write_run_folder(Path(out_dir), model, shadow, optimizer, n_steps, settings, run, batch_size)
    with atomic_path(Path(out_dir) / "history.json") as tmp:
        tmp.write_text(json.dumps({"loss": losses}) + "\n")


def hydra_config(run: Run, settings: Settings, steps: int, batch_size: int) -> dict:
    """The run's config in upstream's ``hydra/config.yaml`` schema."""
    shape = model_shape(run)
    noise = settings.noise
    noise_cfg = (
        {"type": "geometric", "sigma_min": noise.sigma_min, "sigma_max": noise.sigma_max}
        if hasattr(noise, "sigma_min")
        else {"type": "loglinear", "eps": noise.eps}
    )
    return {
        "ngpus": 1,
        "tokens": 4,
        "training": {
            "batch_size": batch_size,
            "accum": settings.accum,
            "n_iters": steps,
            "snapshot_freq": steps,
            "ema": settings.ema_decay,
        },
        "data": {"train": run.dataset_name, "valid": run.dataset_name},
        "graph": {"type": "absorb" if settings.graph.absorbing else "uniform"},
        "noise": noise_cfg,
        "sampling": {
            "predictor": str(run.arch.get("predictor", "analytic")),
            "steps": int(run.arch.get("sampling_steps", shape.length)),
            "noise_removal": True,
        },
        "optim": {
            "weight_decay": settings.weight_decay,
            "optimizer": "AdamW",
            "lr": settings.lr,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "warmup": settings.warmup,
            "grad_clip": -1.0 if settings.grad_clip is None else settings.grad_clip,
        },
        "model": {
            "name": "small",
            "type": "ddit",
            "hidden_size": shape.hidden_size,
            "cond_dim": shape.cond_dim,
            "length": shape.length,
            "n_blocks": shape.n_blocks,
            "n_heads": shape.n_heads,
            "scale_by_sigma": False,
            "dropout": shape.dropout,
        },
    }


def write_run_folder(
    out_dir: Path,
    model: torch.nn.Module,
    shadow: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    step: int,
    settings: Settings,
    run: Run,
    batch_size: int,
) -> Path:
    """``hydra/config.yaml`` and ``checkpoints/checkpoint_1.pth`` as upstream's ``run_train.py`` writes."""
    config = hydra_config(run, settings, step, batch_size)
    (out_dir / "hydra").mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / runfolder.CONFIG) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    path = out_dir / "checkpoints" / "checkpoint_1.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "optimizer": optimizer.state_dict(),
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "ema": {
            "decay": settings.ema_decay,
            "num_updates": step,
            "shadow_params": [s.clone() for s in shadow],
        },
        "step": step,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def reference(run: Run, model_dir: Path, data_dir: Path, out_h5: Path) -> None:
    """Upstream's log-scores on probe inputs: ``probe.npz`` when the run folder has one, else the NumPy
    evaluation of the checkpoint (``reference_forward``) on ``run.parity["n_probe"]`` probe inputs."""
    del data_dir
    folder, checkpoint_path = runfolder.resolve(Path(model_dir))
    which = str(run.arch.get("legacy_weights", "ema"))
    probe = folder / PROBE
    blocks: dict[str, np.ndarray] = {}  # each block's output, from the NumPy evaluation only
    if probe.is_file():
        with np.load(probe) as arrays:
            inputs = {k: arrays[k] for k in ("x", "labels", "sigma")}
            output = arrays[f"log_score_{which}"]
        producer = f"upstream D3 outputs ({probe}, log_score_{which})"
    else:
        state = runfolder.weights_of(runfolder.load_checkpoint(checkpoint_path), which, checkpoint_path)
        inputs = probe_inputs(run, int(run.parity.get("n_probe", 8)), run.seed + 7)
        arrays = {k: v.detach().numpy().astype(np.float64) for k, v in state.items()}
        output = reference_forward.log_score(model_shape(run), arrays, **inputs, blocks=blocks)
        output = output.astype(np.float32)
        producer = f"NumPy evaluation of upstream's forward on {checkpoint_path} ({which} weights)"
    if output.shape[:2] != inputs["x"].shape:
        raise FormatError(f"{probe}: log_score_{which} has shape {output.shape}, x {inputs['x'].shape}")
    layers = {k: v.astype(np.float32) for k, v in blocks.items()}
    attrs = {"producer": producer, "run": run.name}
    write_reference_arrays(out_h5, inputs, {"log_score": output}, layers, attrs)
