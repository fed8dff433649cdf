"""Upstream D3 checkpoints <-> Lightning checkpoints of ``lit.D3Module`` (torch only).

Upstream (``utils1.save_checkpoint``): ``{"model": state_dict, "ema": {"decay", "num_updates",
"shadow_params"}, "optimizer": AdamW state over the model's parameters and then the noise's ``empty``,
"step": int}``; the config lives beside it in ``<run>/hydra/config.yaml``. Lightning: ``state_dict`` with
``net.*`` (the trained weights), ``ema.*`` (the shadow parameters by name, the rest as in ``model``) and
``noise_empty``, ``optimizer_states`` (the same AdamW state: the module's optimizer has upstream's
parameter order), ``global_step`` and the fit loop's progress counters at that step, so
``Trainer.fit(ckpt_path=...)`` resumes at ``step`` with the same random stream (``diffusion.step_generator``).
The learning rate, a ``numpy.float64`` in upstream's files, is stored as a float.

Upstream's loaders read a run folder, not a file: ``to-original`` into ``<run>/checkpoints/`` (or
``checkpoints-meta/``) also writes ``<run>/hydra/config.yaml`` when it is absent: the upstream run's own
config (kept in the Lightning checkpoint by ``to-lightning``), or for a model trained here our run's
config in upstream's schema (``legacy.hydra_config``). An existing config is kept unless its ``model``
section contradicts the checkpoint's, which stops the conversion before anything is written. Parts that
are ours only (``ours_*`` modules such as ``kmer_kernel``'s, noise other than geometric) are written as
they are, with a warning: upstream's code cannot load them.

    python -m tf2lightning.families.d3.checkpoint to-lightning <run folder or checkpoint_N.pth> converted.ckpt
    python -m tf2lightning.families.d3.checkpoint to-original last.ckpt <run>/checkpoints/checkpoint.pth
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError
from tf2lightning.families.d3 import runfolder

log = logging.getLogger(__name__)
ORIGINAL_KEYS = runfolder.CHECKPOINT_KEYS
LIGHTNING_KEYS = ("state_dict", "optimizer_states", "global_step")


def _check(checkpoint: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
    missing = [k for k in keys if k not in checkpoint]
    if missing:
        raise FormatError(f"{path}: checkpoint lacks {missing}; found {sorted(checkpoint)}")


def _fit_loop_state(step: int) -> dict[str, Any]:
    """A fresh fit loop's state with ``step`` optimizer steps done, at an epoch boundary."""
    state = copy.deepcopy(L.Trainer(logger=False, enable_checkpointing=False).fit_loop.state_dict())
    optimizer_steps = state["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"]
    for counter in ("ready", "completed"):
        optimizer_steps["total"][counter] = step
        state["epoch_loop.manual_optimization.optim_step_progress"]["total"][counter] = step
    for counter in ("ready", "started", "processed", "completed"):
        state["epoch_loop.batch_progress"]["total"][counter] = step
    state["epoch_loop.state_dict"]["_batches_that_stepped"] = step
    return state


def to_lightning(
    original: dict[str, Any], path: str = "<original>", hydra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An original-format checkpoint dict (and its run's ``hydra/config.yaml``, if known) -> a Lightning
    checkpoint dict (tensors shared, not copied)."""
    _check(original, ORIGINAL_KEYS, path)
    ema = runfolder.ema_state(original, path)
    step = int(original["step"])
    state_dict = {f"net.{k}": v for k, v in original["model"].items()}
    state_dict.update({f"ema.{k}": v for k, v in ema.items()})
    state_dict["noise_empty"] = torch.tensor(0.0)
    optimizer = {
        "state": original["optimizer"]["state"],
        "param_groups": [{**g, "lr": float(g["lr"])} for g in original["optimizer"]["param_groups"]],
    }
    return {
        "epoch": 0,
        "global_step": step,
        "pytorch-lightning_version": L.__version__,
        "state_dict": state_dict,
        "loops": {"fit_loop": _fit_loop_state(step)},
        "callbacks": {},
        "optimizer_states": [optimizer],
        "lr_schedulers": [],
        "d3_original": {
            "ema_decay": float(original["ema"]["decay"]),
            "config": original.get("config"),
            "hydra_config": hydra,
        },
    }


def to_original(lightning: dict[str, Any], path: str = "<lightning>") -> dict[str, Any]:
    """A Lightning checkpoint dict of ``D3Module`` -> the original-format dict."""
    _check(lightning, (*LIGHTNING_KEYS, "d3_original"), path)
    meta = lightning["d3_original"]
    state = lightning["state_dict"]
    model = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    original: dict[str, Any] = {"model": model}
    names = runfolder.trainable_names(model)
    missing = [n for n in names if f"ema.{n}" not in state]
    if missing:
        raise FormatError(f"{path}: state_dict lacks EMA parameters {missing[:3]}...")
    step = int(lightning["global_step"])
    original.update(
        ema={
            "decay": meta["ema_decay"],
            "num_updates": step,
            "shadow_params": [state[f"ema.{n}"] for n in names],
        },
        optimizer=lightning["optimizer_states"][0],
        step=step,
    )
    return original


def hydra_config_of(lightning: dict[str, Any]) -> dict[str, Any] | None:
    """Upstream's ``hydra/config.yaml`` for a Lightning checkpoint: the upstream run's own, else one made
    from our run's config (a model trained here); ``None`` when the checkpoint carries neither."""
    meta = lightning.get("d3_original") or {}
    if meta.get("hydra_config"):
        return meta["hydra_config"]
    if not meta.get("config"):
        return None
    from tf2lightning.families.d3.legacy import hydra_config
    from tf2lightning.families.d3.training import Settings
    from tf2lightning.run import run_from_dict

    run = run_from_dict(meta["config"])
    step = int(lightning["global_step"])
    return hydra_config(run, Settings.from_run(run), step, int(run.train.get("batch_size", 32)))


def ours_only(original: dict[str, Any], config: dict[str, Any] | None) -> list[str]:
    """What in an original-format checkpoint (and its config) upstream's code cannot load."""
    found = sorted({k.split(".")[0] for k in original["model"] if k.startswith("ours_")})
    noise = (config or {}).get("noise", {}).get("type", "geometric")
    if noise != "geometric":
        found.append(f"noise {noise!r} (upstream's noise_lib has geometric only)")
    return found


def _config_target(target: Path, config: dict[str, Any] | None) -> Path | None:
    """``<run>/hydra/config.yaml`` to write beside a ``<run>/checkpoints*/`` target, or ``None``."""
    target = Path(target)
    if config is None or not target.parent.name.startswith("checkpoints"):
        return None
    path = target.parent.parent / runfolder.CONFIG
    if not path.is_file():
        return path
    existing = runfolder.read_config(target.parent.parent)
    if existing.get("model") != config.get("model"):
        raise FormatError(
            f"{path}: its model section {existing.get('model')} contradicts the checkpoint's "
            f"{config.get('model')}; convert into another run folder or remove the config"
        )
    return None


def _load(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A checkpoint dict read with ``weights_only=True`` and upstream's numpy allow-list."""
    try:
        with torch.serialization.safe_globals(runfolder.numpy_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise FormatError(f"{path}: not a loadable torch checkpoint ({error})") from None
    if not isinstance(checkpoint, dict):
        raise FormatError(f"{path}: not a checkpoint dict ({type(checkpoint).__name__})")
    _check(checkpoint, keys, str(path))
    return checkpoint


def convert_file(direction: str, source: Path, target: Path) -> None:
    """``to-lightning`` or ``to-original``: read ``source``, write ``target`` atomically."""
    config_path = None
    if direction == "to-lightning":
        folder, source = runfolder.resolve(Path(source))
        hydra = runfolder.read_config(folder) if (folder / runfolder.CONFIG).is_file() else None
        result = to_lightning(_load(source, ORIGINAL_KEYS), str(source), hydra)
    else:
        lightning = _load(source, LIGHTNING_KEYS)
        result = to_original(lightning, str(source))
        config = hydra_config_of(lightning)
        config_path = _config_target(target, config)
        if unreadable := ours_only(result, config):
            log.warning("%s: upstream's code cannot load %s (ours only)", target, ", ".join(unreadable))
    with atomic_path(target) as tmp:
        torch.save(result, tmp)
    if config_path is not None:
        with atomic_path(config_path) as tmp:
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("direction", choices=("to-lightning", "to-original"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    convert_file(args.direction, args.source, args.target)


if __name__ == "__main__":
    main()
