"""Lightning training stage: the family's LightningModule and DataModule under one standard Trainer.

The Trainer keeps ``checkpoints/`` beside the output (not a declared output, so Snakemake leaves it alone):
``last.ckpt`` at every epoch end, ``interrupted.ckpt`` when the job is stopped with SIGTERM (Slurm's time
limit, preemption, ``scancel``) and, on Slurm, ``hpc_ckpt_<n>.ckpt`` when Slurm sends :data:`REQUEUE_SIGNAL`
before the time limit (Lightning saves it and requeues the job). A rerun resumes from the newest of them,
as long as the run's configuration and inputs are unchanged (their fingerprint is stored next to the
checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.torch_weights import load_mapped, load_safetensors
from tf2lightning.core.training_guards import AtomicCheckpointIO, FiniteLossGuard
from tf2lightning.core.tsv import write_tsv
from tf2lightning.families import family_module
from tf2lightning.run import Run, run_to_dict

log = logging.getLogger(__name__)

# The signal Slurm sends before the time limit (profiles/slurm: ``--signal=URG@300``). Its default action
# is "ignore", so the processes between Slurm and the trainer (the Snakemake job step) survive it, where
# Lightning's default SIGUSR1 would kill them.
REQUEUE_SIGNAL = signal.SIGURG


class History(Callback):
    """Per-epoch metrics (every logged scalar), kept in Lightning checkpoints so a resumed run keeps them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Runs after the epoch's validation, so train and val metrics are both in ``callback_metrics``."""
        row = {"epoch": float(trainer.current_epoch), "step": float(trainer.global_step)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        self.rows.append(row)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])


class SaveOnInterrupt(Callback):
    """Save ``interrupted.ckpt`` when Lightning stops on SIGTERM (it finishes the current batch first)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)
            log.info("stopped by SIGTERM at step %d: saved %s", trainer.global_step, self.path)


class ResumeLog(Callback):
    """Log where training starts: step 0, or the step of the checkpoint it resumed from."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        log.info("training starts at epoch %d, step %d", trainer.current_epoch, trainer.global_step)


def fingerprint(run: Run, inputs: list[Path]) -> str:
    """A hash of everything that shapes training: the configuration (not the thread count) and the
    inputs' size and modification time. A checkpoint with another fingerprint is not resumed."""
    config = {k: v for k, v in run_to_dict(run).items() if k != "threads"}
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in inputs]
    blob = json.dumps([config, files], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


RESUMABLE = ("last.ckpt", "interrupted.ckpt", "hpc_ckpt_*.ckpt")


def resumable_checkpoint(ckpt_dir: Path, stamp_value: str) -> Path | None:
    """The newest checkpoint in ``ckpt_dir`` if it belongs to this fingerprint; stale ones are removed."""
    stamp = ckpt_dir / "fingerprint.txt"
    if stamp.exists() and stamp.read_text().strip() == stamp_value:
        found = [p for pattern in RESUMABLE for p in ckpt_dir.glob(pattern)]
        if found:
            return max(found, key=lambda p: p.stat().st_mtime_ns)
    elif ckpt_dir.exists():
        log.info("discarding checkpoints of another configuration or inputs in %s", ckpt_dir)
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(stamp_value + "\n")
    return None


class SlurmStepEnvironment(SLURMEnvironment):
    """Lightning's SLURM integration (requeue on :data:`REQUEUE_SIGNAL`) in a job step of one task with
    several devices, as Snakemake's Slurm executor runs every job (``srun -n1``): Lightning starts one
    process per device itself, as on a workstation. (Plain ``SLURMEnvironment`` expects Slurm to have
    started one task per device; here it would start one process, on one device, whose sampler still
    keeps only its 1/``devices`` share of every epoch.)"""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ranks = LightningEnvironment()

    @property
    def creates_processes_externally(self) -> bool:
        return self._ranks.creates_processes_externally

    @property
    def main_address(self) -> str:
        return self._ranks.main_address

    @property
    def main_port(self) -> int:
        return self._ranks.main_port

    def world_size(self) -> int:
        return self._ranks.world_size()

    def set_world_size(self, size: int) -> None:
        self._ranks.set_world_size(size)

    def global_rank(self) -> int:
        return self._ranks.global_rank()

    def set_global_rank(self, rank: int) -> None:
        self._ranks.set_global_rank(rank)

    def local_rank(self) -> int:
        return self._ranks.local_rank()

    def node_rank(self) -> int:
        return self._ranks.node_rank()

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_nodes != 1:
            raise ValueError(f"a one-task Slurm job step runs on one node, but num_nodes is {num_nodes}")

    def teardown(self) -> None:
        self._ranks.teardown()


def cluster_plugins(devices: Any = 1) -> list[SLURMEnvironment]:
    """Lightning's SLURM integration inside a Slurm job: on :data:`REQUEUE_SIGNAL` it saves
    ``hpc_ckpt_<n>.ckpt`` in the Trainer's root directory and runs ``scontrol requeue``. With more than
    one device in a one-task step, :class:`SlurmStepEnvironment` (Lightning starts the ranks)."""
    if not SLURMEnvironment.detect():
        return []
    one_task_many_devices = os.environ.get("SLURM_NTASKS") == "1" and str(devices) != "1"
    environment = SlurmStepEnvironment if one_task_many_devices else SLURMEnvironment
    log.info(
        "Slurm job %s, CUDA_VISIBLE_DEVICES=%s: auto-requeue on %s (%s)",
        os.environ.get("SLURM_JOB_ID"),
        os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        REQUEUE_SIGNAL.name,
        environment.__name__,
    )
    return [environment(auto_requeue=True, requeue_signal=REQUEUE_SIGNAL)]


def default_precision() -> str:
    """bf16 mixed precision on a GPU that supports it, fp32 on CPU."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def make_trainer(run: Run, work_dir: Path, ckpt_dir: Path, callbacks: list[Callback]) -> L.Trainer:
    """The standard Trainer for every family; the family's ``train`` config sets its knobs: ``max_epochs``,
    ``precision`` (default :func:`default_precision`), ``gradient_clip``, ``accumulate_grad_batches`` (1),
    and where it runs:
    ``accelerator`` (``auto``), ``devices`` (1), ``num_nodes`` (1), ``strategy`` (``auto``; ``ddp`` for
    data-parallel training over ``devices`` processes per node).

    Its root directory is ``ckpt_dir``, where Lightning's SLURM integration saves its checkpoints."""
    cfg = run.train
    return L.Trainer(
        max_epochs=int(cfg.get("max_epochs", 10)),
        accelerator=cfg.get("accelerator", "auto"),
        devices=cfg.get("devices", 1),
        num_nodes=int(cfg.get("num_nodes", 1)),
        strategy=cfg.get("strategy", "auto"),
        precision=cfg.get("precision") or default_precision(),
        gradient_clip_val=cfg.get("gradient_clip"),
        accumulate_grad_batches=int(cfg.get("accumulate_grad_batches", 1)),
        callbacks=callbacks,
        plugins=[*cluster_plugins(cfg.get("devices", 1)), AtomicCheckpointIO()],
        logger=CSVLogger(work_dir, name="logs", version=0),
        default_root_dir=ckpt_dir,
        log_every_n_steps=int(cfg.get("log_every_n_steps", 10)),
        enable_progress_bar=True,
        deterministic=bool(cfg.get("deterministic", False)),
    )


class MinLossEarlyStopping(EarlyStopping):
    """Lightning's early stopping on a loss, but the best is the lowest loss seen, also one that fell by
    less than ``min_delta`` (EpiBERT's scripts' rule; the same as Lightning's when ``min_delta`` is 0)."""

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        result = super()._evaluate_stopping_criteria(current)
        self.best_score = torch.minimum(self.best_score, current.to(self.best_score.device))
        return result


def early_stopping(run: Run) -> EarlyStopping | None:
    """Stop after ``train.patience`` epochs whose ``val_loss`` is not below every earlier one by more
    than ``train.min_delta`` (0 when absent; EpiBERT's scripts: 5e-7); None without ``patience``."""
    patience = run.train.get("patience")
    if not patience:
        return None
    min_delta = float(run.train.get("min_delta") or 0.0)
    return MinLossEarlyStopping(monitor="val_loss", patience=int(patience), min_delta=min_delta)


def train(
    run: Run,
    data_h5: str | Path,
    init_weights: str | Path,
    out_model: str | Path,
    out_history: str | Path,
    extras: Mapping[str, str] | None = None,
) -> None:
    """Fit the family's LightningModule; save the best model as ``.pt`` and the per-epoch history.

    The family's ``lit.make_module(run, model, **extras)`` and ``data.make_datamodule(run, h5, **extras)``
    receive its extra inputs (e.g. a teacher's predictions) by name; an optional
    ``lit.callbacks(run) -> list[Callback]`` adds callbacks (e.g. EMA of the weights).
    """
    torch.set_num_threads(run.threads)
    L.seed_everything(run.seed, workers=True)
    work_dir = Path(out_model).parent
    model = family_module(run.family, "model").build(run)
    if run.train.get("init", "scratch") == "converted":
        load_mapped(model, load_safetensors(init_weights))
        log.info("initialised from converted weights %s", init_weights)
    extra_paths = {name: Path(path) for name, path in (extras or {}).items()}
    lit = family_module(run.family, "lit")
    module = lit.make_module(run, model, **extra_paths)
    datamodule = family_module(run.family, "data").make_datamodule(run, Path(data_h5), **extra_paths)

    ckpt_dir = work_dir / "checkpoints"
    inputs = [Path(data_h5), *extra_paths.values()]
    if run.train.get("init", "scratch") == "converted":
        inputs.append(Path(init_weights))
    resume = resumable_checkpoint(ckpt_dir, fingerprint(run, inputs))
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", save_last=True)
    history = History()
    callbacks: list[Callback] = [
        FiniteLossGuard(),
        best,
        history,
        SaveOnInterrupt(ckpt_dir / "interrupted.ckpt"),
        ResumeLog(),
        *getattr(lit, "callbacks", lambda run: [])(run),
    ]
    stopping = early_stopping(run)
    if stopping:
        callbacks.append(stopping)
    trainer = make_trainer(run, work_dir, ckpt_dir, callbacks)
    if resume:
        log.info("resuming from %s", resume)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    except SIGTERMException as stop:  # a SystemExit with status 0: the job must fail, a rerun resumes
        raise SystemExit(128 + signal.SIGTERM) from stop

    if not trainer.is_global_zero:  # DDP: the other ranks leave the outputs to rank 0
        return
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    save_model(model, run, history.rows, out_model)
    columns = sorted({k for row in history.rows for k in row}, key=lambda k: (k not in ("epoch", "step"), k))
    write_tsv(out_history, [{c: row.get(c, "") for c in columns} for row in history.rows], columns)


def save_model(model: torch.nn.Module, run: Run, history: list[dict[str, float]], path: str | Path) -> None:
    """The trained model as a ``.pt`` dict loadable with ``torch.load(..., weights_only=True)``."""
    payload = {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": run_to_dict(run),
        "history": history,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_saved_config(path: str | Path) -> dict[str, Any]:
    """The run configuration stored in a saved ``.pt``."""
    return torch.load(path, map_location="cpu", weights_only=True)["config"]


def load_model(run: Run, path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the family's model from a saved ``.pt`` (never unpickles arbitrary objects)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = family_module(run.family, "model").build(run)
    model.load_state_dict(payload["model_state_dict"])
    return model.eval(), payload
