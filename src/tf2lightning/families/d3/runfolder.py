"""Upstream D3 run folders, as ``train_n_sample/run_train.py`` leaves them (torch only).

    <run>/hydra/config.yaml                the run's config (upstream saves none in the checkpoint)
    <run>/checkpoints/checkpoint_N.pth     snapshots {model, ema, optimizer, step}
    <run>/checkpoints-meta/checkpoint.pth  the latest state, for resuming

``arch.legacy_model`` names the run folder (its newest ``checkpoint_N.pth``) or one checkpoint file in it;
``{dataset}`` in it stands for the dataset's name (one arch entry for several datasets' runs).
Upstream's optimizer state holds a ``numpy.float64`` learning rate, so checkpoints are read with
``torch.load(weights_only=True)`` and an explicit allow-list of numpy's scalar and dtype (numpy 2 pickles
``numpy._core.multiarray.scalar``, numpy 1 ``numpy.core.multiarray.scalar``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.d3.datasets import dataset_kind
from tf2lightning.families.d3.model import Shape
from tf2lightning.run import Run

CONFIG = Path("hydra") / "config.yaml"
PROBE = "probe.npz"  # upstream's own inputs and outputs, where a run folder carries them (the fixtures)
SNAPSHOT = re.compile(r"checkpoint_(\d+)\.pth")
CHECKPOINT_KEYS = ("model", "ema", "optimizer", "step")
NUMPY_SCALAR_NAMES = ("numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar")
FROZEN = ("embed.0.W",)  # requires_grad=False in upstream: not in the EMA shadow list


def numpy_globals() -> list[Any]:
    """The allow-list for upstream's pickled numpy scalars, under both numpy generations' names."""
    scalar = np._core.multiarray.scalar  # type: ignore[attr-defined]
    return [*((scalar, name) for name in NUMPY_SCALAR_NAMES), np.dtype, type(np.dtype(np.float64))]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """An upstream (or our plain loop's) checkpoint dict, read with ``weights_only=True``."""
    try:
        with torch.serialization.safe_globals(numpy_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise FormatError(f"{path}: not a loadable torch checkpoint ({error})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise FormatError(f"{path}: checkpoint lacks {missing}; found {found}")
    checkpoint["model"] = {k.removeprefix("module."): v for k, v in checkpoint["model"].items()}
    return checkpoint


def resolve(path: Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint file)`` of a run folder (its newest snapshot) or of a checkpoint file."""
    path = Path(path)
    if path.is_file():
        folder = path.parent.parent if path.parent.name.startswith("checkpoints") else path.parent
        return folder, path
    if not (path / CONFIG).is_file():
        raise FormatError(f"{path}: not an upstream D3 run folder (no {CONFIG})")
    snapshots = sorted(
        (int(m.group(1)), p)
        for p in (path / "checkpoints").glob("checkpoint_*.pth")
        if (m := SNAPSHOT.fullmatch(p.name))
    )
    if snapshots:
        return path, snapshots[-1][1]
    for candidate in (path / "checkpoints" / "checkpoint.pth", path / "checkpoints-meta" / "checkpoint.pth"):
        if candidate.is_file():
            return path, candidate
    raise FormatError(f"{path}: no checkpoints/checkpoint_N.pth or checkpoints-meta/checkpoint.pth")


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise FormatError(f"{path}: missing; an upstream run folder keeps its config there")
    with open(path) as handle:
        config = yaml.safe_load(handle)
    for section in ("model", "graph", "noise"):
        if not isinstance(config, dict) or section not in config:
            raise FormatError(f"{path}: no {section!r} section")
    return config


def find(run: Run) -> Path | None:
    """The configured upstream run folder, or ``None`` when the model is trained here."""
    given = run.arch.get("legacy_model")
    if not given:
        return None
    path = Path(str(given).replace("{dataset}", run.dataset_name))
    if path.is_file() or (path / CONFIG).is_file():
        return path
    return None


def has_upstream_outputs(run: Run) -> bool:
    """Whether ``run``'s upstream run folder carries upstream's outputs (``probe.npz``)."""
    folder = find(run)
    return folder is not None and (resolve(folder)[0] / PROBE).is_file()


@functools.lru_cache(maxsize=8)
def _shapes(checkpoint: Path) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in load_checkpoint(checkpoint)["model"].items()}


def _agree(run: Run, path: Path, name: str, upstream: object) -> None:
    """A contradicting config value stops the run, naming both."""
    ours = run.arch.get(name)
    if ours is not None and ours != upstream:
        raise ConfigError(
            f"config key families.d3.archs.{run.arch_name}.{name} is {ours!r}, but the upstream run "
            f"{path} has {upstream!r}; remove the key or point legacy_model at a matching run"
        )


def noise_keys(noise: dict[str, Any]) -> dict[str, object]:
    """Upstream's ``noise`` section as our arch keys: noise, sigma_min, sigma_max, noise_eps."""
    keys: dict[str, object] = {"noise": noise["type"]}
    names = {"sigma_min": "sigma_min", "sigma_max": "sigma_max", "eps": "noise_eps"}
    keys.update({ours: noise[theirs] for theirs, ours in names.items() if theirs in noise})
    return keys


def shape_of(run: Run, path: Path) -> Shape:
    """The module shape of an upstream run: sizes from ``hydra/config.yaml``, the rest from tensor shapes."""
    folder, checkpoint = resolve(path)
    config = read_config(folder)
    shapes = _shapes(checkpoint)
    model = config["model"]
    graph = {"uniform": "uniform", "absorb": "absorbing"}.get(
        config["graph"]["type"], config["graph"]["type"]
    )
    config_path = folder / CONFIG
    sizes = {k: model[k] for k in ("hidden_size", "cond_dim", "n_blocks", "n_heads")}
    for name, value in {**sizes, "dropout": model.get("dropout", 0.1), "graph": graph}.items():
        _agree(run, config_path, name, value)
    for name, value in noise_keys(config["noise"]).items():
        _agree(run, config_path, name, value)
    length = int(model["length"])
    if length != dataset_kind(run).length:
        raise ConfigError(
            f"{config_path}: model.length {length}, the {run.dataset_name} dataset {dataset_kind(run).length}"
        )
    label_emb = shapes.get("label_emb.0.weight")
    return Shape(
        backbone=str(run.arch.get("backbone") or run.arch_name),
        n_tokens=shapes["vocab_embed.embedding"][0],
        length=length,
        hidden_size=int(sizes["hidden_size"]),
        cond_dim=int(sizes["cond_dim"]),
        n_blocks=int(sizes["n_blocks"]),
        n_heads=int(sizes["n_heads"]),
        n_signal=shapes["vocab_embed.signal_embedding.weight"][1],
        per_position=label_emb is None,
        label_classes=shapes["label_embed.embedding_table.weight"][0] - 1,
        label_emb_in=None if label_emb is None else label_emb[1],
        fourier="embed.1.weight" in shapes,
        conv_width=shapes["linear.weight"][0],
        conv_embed_dim=shapes["denses.0.dense.weight"][1],
        dropout=float(model.get("dropout", 0.1)),
        absorbing=graph == "absorbing",
        kmer_kernel=int(run.arch.get("kmer_kernel", 1)),
    )


def trainable_names(model_state: dict[str, Any]) -> list[str]:
    """The EMA shadow list's names: the state dict without buffers and frozen parameters, in order."""
    return [k for k in model_state if k != "rotary_emb.inv_freq" and k not in FROZEN]


def ema_state(checkpoint: dict[str, Any], path: Path | str) -> dict[str, torch.Tensor]:
    """The EMA weights as a state dict: the shadow parameters by name, the rest as in ``model``."""
    names = trainable_names(checkpoint["model"])
    shadow = checkpoint["ema"]["shadow_params"]
    if len(shadow) != len(names):
        raise FormatError(
            f"{path}: ema.shadow_params has {len(shadow)} tensors, the model {len(names)} trainable"
        )
    state = dict(checkpoint["model"])
    for name, tensor in zip(names, shadow, strict=True):
        if tuple(tensor.shape) != tuple(state[name].shape):
            raise FormatError(
                f"{path}: ema shadow for {name} has shape {tuple(tensor.shape)}, "
                f"the model {tuple(state[name].shape)}"
            )
        state[name] = tensor
    return state


def weights_of(checkpoint: dict[str, Any], which: str, path: Path | str) -> dict[str, torch.Tensor]:
    """``ema`` (upstream's sampling weights) or ``model`` (the raw weights)."""
    return ema_state(checkpoint, path) if which == "ema" else dict(checkpoint["model"])
