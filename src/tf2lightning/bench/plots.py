"""Report figures (matplotlib, Agg backend, PNG): throughput with ratios, TF-vs-torch scatter, curves."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.tsv import read_tsv

SIDE_COLOURS = {"tf": "#ff8f00", "torch": "#5c6bc0"}


def _save(fig: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def bar_label(row: Mapping[str, str]) -> str:
    """A bar's label: its ratio to the baseline, then examples/s (convert), achieved TFLOP/s and MFU where
    the row has them; a failed variant's status instead."""
    if not row["rate"]:
        return row["status"][:70]
    parts = [f"{float(row['ratio']):.2f}x"] if row["ratio"] else []
    if row.get("examples_per_s"):
        parts.append(f"{float(row['examples_per_s']):,.0f} examples/s")
    if row.get("achieved_tflops"):
        parts.append(f"{float(row['achieved_tflops']):.3g} TFLOP/s")
    if row.get("mfu"):
        parts.append(f"MFU {float(row['mfu']):.1%}")
    return ", ".join(parts)


def throughput_bars(rows: Sequence[Mapping[str, str]], out_png: str | Path, title: str) -> None:
    """One panel per task: each variant's rate (horizontal bar; per core where the task's rows have it),
    labelled with its ratio to the baseline (and its examples/s, achieved TFLOP/s and MFU where known);
    failed variants are listed with their status instead."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    if not tasks:
        fig, ax = plt.subplots(figsize=(8, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no benchmark declared for this family", ha="center", va="center")
        fig.suptitle(title, fontsize=11)
        _save(fig, out_png)
        return
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8, 1.2 + 0.55 * len(rows)), squeeze=False)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        labels = [f"{r['side']}: {r['variant']}" for r in task_rows]
        per_core = any(r.get("rate_per_core") for r in task_rows)  # convert: MB/s per CPU second
        column = "rate_per_core" if per_core else "rate"
        rates = [float(r[column]) if r.get(column) else 0.0 for r in task_rows]
        colours = [SIDE_COLOURS.get(r["side"], "grey") for r in task_rows]
        y = np.arange(len(task_rows))
        bars = ax.barh(y, rates, color=colours)
        for bar, row in zip(bars, task_rows, strict=True):
            if row["variant"] == row["baseline"]:
                bar.set_hatch("//")  # the baseline (a plain-PyTorch family's is on the torch side too)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        top = max(rates) if max(rates) > 0 else 1.0
        for i, row in enumerate(task_rows):
            ax.text(rates[i] + top * 0.01, i, bar_label(row), va="center", fontsize=8)
        unit = next((r["unit"] for r in task_rows if r["unit"]), "")
        baseline = task_rows[0]["baseline"]
        ax.set_xlim(0, top * 1.6)
        scale = f"{unit}/s per core (per CPU second)" if per_core else f"{unit}/s (median)"
        ax.set_xlabel(scale + (f"; ratio vs {baseline}" if baseline else ""))
        ax.set_title(task, loc="left", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out_png)


def parity_scatter(
    points: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out_png: str | Path,
    title: str,
    legacy_label: str = "TensorFlow",
) -> None:
    """The legacy model's outputs (x) vs the port's (y), one panel per output, with the max abs error."""
    fig, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 4), squeeze=False)
    for ax, (name, (tf_values, torch_values)) in zip(axes[0], points.items(), strict=True):
        x, y = np.ravel(tf_values), np.ravel(torch_values)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.scatter(x, y, s=6, alpha=0.6, color=SIDE_COLOURS["torch"])
        ax.set_xlabel(f"{legacy_label} {name}")
        ax.set_ylabel(f"PyTorch {name}")
        ax.set_title(f"{name}: max |Δ| = {float(np.abs(x - y).max()):.2e} (n={x.size})", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out_png)


def training_curves(
    history_tsv: str | Path, keras_history_json: str | Path | None, out_png: str | Path, title: str
) -> None:
    """Loss per epoch: Lightning (``train/history.tsv``) and, when given, the legacy Keras fit."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rows = read_tsv(history_tsv)
    epochs = [float(r["epoch"]) + 1 for r in rows]
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        values = [float(r[key]) if r.get(key) else np.nan for r in rows]
        axes[0].plot(epochs, values, style, marker="o", label=f"Lightning {key}", color=SIDE_COLOURS["torch"])
    if keras_history_json and Path(keras_history_json).is_file():
        history = json.loads(Path(keras_history_json).read_text())
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if key in history:
                xs = range(1, len(history[key]) + 1)
                axes[0].plot(
                    xs, history[key], style, marker="s", label=f"Keras {key}", color=SIDE_COLOURS["tf"]
                )
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    metric_keys = sorted({k for r in rows for k in r if k.startswith("val_") and k != "val_loss"})
    for key in metric_keys:
        axes[1].plot(epochs, [float(r[key]) if r.get(key) else np.nan for r in rows], marker="o", label=key)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation metrics (Lightning)", fontsize=9)
    if metric_keys:
        axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out_png)
