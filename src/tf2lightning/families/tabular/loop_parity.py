"""Do the plain loop and the Lightning loop agree? Their loss curves (the ``history`` saved in ``model.pt``,
epoch by epoch, unrounded) and their saved best parameters, compared within stated tolerances.

The two loops compute their steps with separate code (:mod:`plain_step` and :mod:`recipe`) from the same
seeds, data order and hyperparameters, so they agree up to float32 rounding, not bitwise: a loss is
computed in another order, Lightning logs each epoch mean as a float32 tensor (the plain loop keeps the
float64 mean), and Adam turns rounding differences in small gradients into parameter differences that
grow with the learning rate. ``history.tsv`` is not compared: its 6 significant digits alone flip by 1e-5
near 1.

Each curve is therefore compared relative to its own scale, ``max |a - b| <= CURVE_RTOL * max |value|``,
and the parameters with ``PARAM_RTOL * max |parameter|``, leaving out the few that no output depends on
(:func:`gradient_free`). ``tests/test_tabular_loops.py`` asserts that dropping any one training feature
from one loop moves the parameters by more than 10 times that tolerance.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tf2lightning.core.tsv import write_tsv
from tf2lightning.errors import FormatError
from tf2lightning.families.tabular.weights import read_source
from tf2lightning.run import Run

CURVE_RTOL = 1e-5
PARAM_RTOL = 1e-5
COLUMNS = ("quantity", "max_abs_err", "tolerance", "ok", "note")


@dataclass(frozen=True)
class Row:
    quantity: str
    max_abs_err: float
    tolerance: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_err <= self.tolerance)  # False for NaN


@dataclass(frozen=True)
class LoopParity:
    """One row per history column (the whole curve) and one for all parameters together."""

    rows: tuple[Row, ...]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def row(self, quantity: str) -> Row:
        return next(row for row in self.rows if row.quantity == quantity)

    def error(self, quantity: str) -> float:
        return self.row(quantity).max_abs_err

    def summary(self) -> str:
        failing = [
            f"{r.quantity} ({r.max_abs_err:.3g} > {r.tolerance:g}{', ' + r.note if r.note else ''})"
            for r in self.rows
            if not r.ok
        ]
        worst = max(r.max_abs_err for r in self.rows)
        return (
            f"loops agree (max abs error {worst:.3g})"
            if not failing
            else "loops differ: " + "; ".join(failing)
        )

    def write_tsv(self, path: Path) -> None:
        rows = [
            {
                "quantity": r.quantity,
                "max_abs_err": r.max_abs_err,
                "tolerance": r.tolerance,
                "ok": str(r.ok).lower(),
                "note": r.note,
            }
            for r in self.rows
        ]
        write_tsv(path, rows, COLUMNS)


def _scaled_error(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[float, float, str]:
    """Max abs difference, the tolerance ``rtol * max |value|`` and a note naming the scale."""
    scale = float(max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0)))
    return float(np.abs(a - b).max(initial=0.0)), rtol * scale, f"rtol {rtol:g} of scale {scale:.3g}"


def gradient_free(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Entries of parameter ``key`` that no output depends on: the key bias of an attention ``qkv``
    projection (the middle third; it adds the same amount to every score of a query, and softmax ignores
    that). Their gradient is zero up to rounding, and Adam turns rounding noise into steps of up to ``lr``,
    so two correct implementations leave them wherever their noise led."""
    mask = np.zeros(shape, dtype=bool)
    if key.endswith("attention.qkv.bias"):
        third = shape[0] // 3
        mask[third : 2 * third] = True
    return mask


def read_history(path: Path) -> list[dict[str, float]]:
    """The unrounded per-epoch ``history`` saved in a ``model.pt`` (loaded with ``weights_only=True``)."""
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as error:
        raise FormatError(f"{path}: not a loadable weights-only torch file ({error})") from None
    history = payload.get("history") if isinstance(payload, dict) else None
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise FormatError(f"{path}: no 'history' list of per-epoch dicts in the saved object")
    return history


def _curve_rows(plain: list[dict[str, float]], lightning: list[dict[str, float]]) -> list[Row]:
    if len(plain) != len(lightning):
        note = f"{len(plain)} epochs (plain) vs {len(lightning)} (Lightning)"
        return [Row("epochs", abs(len(plain) - len(lightning)), 0.0, note)]
    rows = []
    columns = sorted({k for row in plain + lightning for k in row} - {"epoch"})
    for column in columns:
        if not all(column in row for row in plain + lightning):
            rows.append(Row(column, np.nan, 0.0, "logged by one loop only"))
            continue
        a = np.array([float(row[column]) for row in plain])
        b = np.array([float(row[column]) for row in lightning])
        if column == "step":
            rows.append(Row(column, float(np.abs(a - b).max()), 0.0, "exact"))
        else:
            rows.append(Row(column, *_scaled_error(a, b, CURVE_RTOL)))
    return rows


def compare_loops(run: Run, plain_dir: Path, lightning_dir: Path) -> LoopParity:
    """Compare the ``model.pt`` (history and parameters) of two training output directories."""
    plain_pt, lightning_pt = Path(plain_dir) / "model.pt", Path(lightning_dir) / "model.pt"
    rows = _curve_rows(read_history(plain_pt), read_history(lightning_pt))
    a, b = read_source(run, plain_pt), read_source(run, lightning_pt)
    if set(a) != set(b):
        rows.append(Row("parameters", np.nan, 0.0, f"different keys: {sorted(set(a) ^ set(b))}"))
    elif any(a[k].shape != b[k].shape for k in a):
        shapes = [f"{k} {a[k].shape} vs {b[k].shape}" for k in sorted(a) if a[k].shape != b[k].shape]
        rows.append(Row("parameters", np.nan, 0.0, "different shapes: " + ", ".join(shapes)))
    else:
        free = {k: gradient_free(k, a[k].shape) for k in sorted(a)}
        flat_a = np.concatenate([a[k].astype(np.float64)[~free[k]] for k in free])
        flat_b = np.concatenate([b[k].astype(np.float64)[~free[k]] for k in free])
        error, tolerance, note = _scaled_error(flat_a, flat_b, PARAM_RTOL)
        n_free = sum(int(mask.sum()) for mask in free.values())
        if n_free:
            note += f"; {n_free} gradient-free entries (attention key biases) not compared"
        rows.append(Row("parameters", error, tolerance, note))
    return LoopParity(tuple(rows))
