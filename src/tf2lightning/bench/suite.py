"""The benchmark runs the workflow's rules call (no framework here): each runs the TF side and the torch
side in their own child processes on the same saved inputs, batch size and thread count, and writes one
TSV of medians, IQRs, throughputs, model FLOPs and ratios against the baseline: TF, or for a family ported
from plain PyTorch its plain loop (training) and its plain loop's reader (loading), timed in the same child
as Lightning and the HDF5 DataModule.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.bench.family_hooks import bench_module, declared_tasks, hook, plain_torch
from tf2lightning.bench.protocol import LEGACY_READER, SideResult, run_side
from tf2lightning.bench.timing import Timing
from tf2lightning.core.reference_file import read_reference
from tf2lightning.core.tsv import write_tsv
from tf2lightning.run import Run, run_to_dict

log = logging.getLogger(__name__)

COLUMNS = (
    "family",
    "dataset",
    "arch",
    "task",
    "side",
    "variant",
    "device",
    "batch_size",
    "threads",
    "unit",
    "items",
    "repeats",
    "median_s",
    "iqr_s",
    "rate",
    "rate_per_core",
    "examples_per_s",
    "cpu_cores",
    "flops_per_item",
    "achieved_tflops",
    "mfu",
    "baseline",
    "ratio",
    "max_abs_err_vs_tf",
    "peak_rss_mb",
    "status",
)


FLOP_COLUMNS = ("flops_per_item", "achieved_tflops", "mfu")
"""Filled for torch variants whose model FLOPs could be counted; ``mfu`` only on a device with a known
peak (a GPU), see :mod:`tf2lightning.bench.mfu`."""
CORE_COLUMNS = ("rate_per_core", "examples_per_s", "cpu_cores")
"""Filled for variants timed with their CPU seconds (the convert task, :mod:`tf2lightning.bench.reading`):
``rate`` per CPU second, examples/s, and the cores they kept busy (CPU seconds / wall seconds)."""


def per_core(timing: Timing) -> float | None:
    """``items`` per CPU second of a timing that recorded its CPU seconds, else None."""
    cpu = timing.extra.get("cpu_s")
    return timing.items / cpu if cpu else None


def core_cells(timing: Timing) -> dict[str, float | str]:
    """The :data:`CORE_COLUMNS` of one timing (empty strings where it has no CPU seconds or examples)."""
    cpu, examples = timing.extra.get("cpu_s"), timing.extra.get("examples")
    return {
        "rate_per_core": per_core(timing) or "",
        "examples_per_s": examples / timing.median_s if examples is not None else "",
        "cpu_cores": cpu / timing.median_s if cpu else "",
    }


def ratio(timing: Timing, base: Timing | None) -> float | str:
    """``timing`` / the baseline: per CPU second where both recorded theirs (the convert task), else per
    wall second; empty without a baseline."""
    if base is None:
        return ""
    mine, theirs = per_core(timing), per_core(base)
    return mine / theirs if mine and theirs else timing.rate / base.rate


@dataclass(frozen=True)
class Settings:
    """What every side of one benchmark shares; ``device="auto"`` lets the torch side use a GPU, ``"cpu"``
    hides it from the children."""

    batch_size: int = 64
    threads: int = 1
    warmup: int = 2
    repeats: int = 5
    device: str = "auto"
    generic_route: bool = True

    @classmethod
    def for_run(cls, run: Run, **overrides: Any) -> Settings:
        """The run's training batch size and job threads, and the family's ``bench.DEVICE`` if it pins
        one (e.g. a plain loop that only runs on the CPU), unless overridden."""
        base = {
            "batch_size": int(run.train.get("batch_size", 64)),
            "threads": run.threads,
            "device": getattr(bench_module(run.family), "DEVICE", "auto"),
        }
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def request(run: Run, side: str, task: str, settings: Settings, paths: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "side": side,
        "task": task,
        "run": run_to_dict(run),
        "paths": {k: str(v) for k, v in paths.items()},
        "batch_size": settings.batch_size,
        "threads": settings.threads,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "device": settings.device,
    }


def tile_rows(array: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of ``array`` repeated along axis 0 (probe inputs -> one full batch)."""
    reps = math.ceil(n / len(array))
    return np.concatenate([array] * reps)[:n]


def result_rows(
    run: Run, results: Iterable[SideResult], settings: Settings, baseline: str | None
) -> list[dict[str, Any]]:
    """One row per variant (timed or failed); ``ratio`` = rate / the baseline variant's rate (per core
    where both recorded CPU seconds, see :func:`ratio`).

    ``baseline`` names a variant, or ``"fastest tf"`` for the fastest TF variant of the first result's task
    (so the generic route, a TF-side task too, is compared with TF itself, not a baseline).
    """
    results = list(results)
    timed = {(r.side, name): t for r in results for name, t in r.timings.items()}
    if baseline == "fastest tf":
        main_task = results[0].task if results else ""
        tf_rates = {
            n: t.rate for r in results if r.side == "tf" and r.task == main_task for n, t in r.timings.items()
        }
        baseline = max(tf_rates, key=tf_rates.__getitem__) if tf_rates else None
    base = next((t for (_, name), t in timed.items() if name == baseline), None)
    rows = []
    for r in results:
        errors = r.notes.get("max_abs_err_vs_tf", {})
        for name in [*r.timings, *r.errors]:
            t = r.timings.get(name)
            err = errors.get(name) if isinstance(errors, Mapping) else errors
            extra = t.extra if t else {}
            rows.append(
                {
                    "family": run.family,
                    "dataset": run.dataset_name,
                    "arch": run.arch_name,
                    "task": r.task,
                    "side": r.side,
                    "variant": name,
                    "device": r.device,
                    "batch_size": settings.batch_size,
                    "threads": settings.threads,
                    "unit": t.unit if t else "",
                    "items": t.items if t else "",
                    "repeats": len(t.samples) if t else "",
                    "median_s": t.median_s if t else "",
                    "iqr_s": t.iqr_s if t else "",
                    "rate": t.rate if t else "",
                    **(core_cells(t) if t else dict.fromkeys(CORE_COLUMNS, "")),
                    **{k: "" if extra.get(k) is None else extra[k] for k in FLOP_COLUMNS},
                    "baseline": baseline or "",
                    "ratio": ratio(t, base) if t else "",
                    "max_abs_err_vs_tf": "" if err is None else float(err),
                    "peak_rss_mb": r.peak_rss_mb if r.peak_rss_mb is not None else "",
                    "status": "ok" if t else r.errors[name],
                }
            )
    return rows


def bench_inference(
    run: Run,
    paths: Mapping[str, str | Path],
    out_tsv: str | Path,
    settings: Settings,
) -> list[dict[str, Any]]:
    """TF (Keras call, tf.function) vs the port (eager, TorchScript, ONNX Runtime), plus the generic
    route (tf2onnx -> ONNX Runtime, -> onnx2torch), on the reference probe inputs tiled to one batch.

    ``paths``: ``model_dir`` (legacy model), ``reference`` (reference.h5), ``weights``, ``torchscript``,
    ``onnx``.
    """
    reference = read_reference(paths["reference"])
    out_tsv = Path(out_tsv)
    with tempfile.TemporaryDirectory(dir=out_tsv.parent, prefix=".bench.") as tmp:
        work = Path(tmp)
        inputs = work / "inputs.npz"
        np.savez(inputs, **{k: tile_rows(v, settings.batch_size) for k, v in reference.inputs.items()})
        common = {"inputs": inputs, "tf_outputs": work / "tf_outputs.npz", "model_dir": paths["model_dir"]}
        torch_paths = {**common, **{k: paths[k] for k in ("weights", "torchscript", "onnx")}}
        generic = {**common, "onnx_out": work / "tf2onnx.onnx", "onnx_in": work / "tf2onnx.onnx"}
        results = [
            run_side(request(run, "tf", "inference", settings, common), work),
            run_side(request(run, "torch", "inference", settings, torch_paths), work),
        ]
        if settings.generic_route:
            results += [
                run_side(request(run, "tf", "generic_route", settings, generic), work),
                run_side(request(run, "torch", "generic_route", settings, generic), work),
            ]
    rows = result_rows(run, results, settings, baseline="fastest tf")
    write_tsv(out_tsv, rows, COLUMNS)
    return rows


def bench_training(
    run: Run, paths: Mapping[str, str | Path], out_tsv: str | Path, settings: Settings
) -> list[dict[str, Any]]:
    """Training throughput: the family's Keras step vs a plain torch loop and Lightning on one batch from
    ``data.h5``, both starting from the converted weights; for a family ported from plain PyTorch, its
    own plain loop vs Lightning in one torch child, per step on one batch or over whole runs (when its
    ``bench.torch_fit`` says so, see :mod:`tf2lightning.bench.torch_training`).

    ``paths``: ``model_dir``, ``h5``, ``weights`` and the train rule's extra inputs (e.g. ``teacher``).
    """
    out_tsv = Path(out_tsv)
    with tempfile.TemporaryDirectory(dir=out_tsv.parent, prefix=".bench.") as tmp:
        work = Path(tmp)
        side_paths: dict[str, Any] = {**paths, "scratch": work}
        if not hasattr(bench_module(run.family), "torch_fit"):
            arrays = hook(run.family, "train_batch")(run, Path(paths["h5"]), settings.batch_size)
            np.savez(work / "batch.npz", **arrays)
            side_paths["batch"] = work / "batch.npz"
        sides = ("torch",) if plain_torch(run.family) else ("tf", "torch")
        results = [run_side(request(run, side, "training", settings, side_paths), work) for side in sides]
    rows = result_rows(
        run, results, settings, baseline="plain loop" if plain_torch(run.family) else "keras train step"
    )
    write_tsv(out_tsv, rows, COLUMNS)
    return rows


def data_views(run: Run) -> dict[str, Run]:
    """The dataset-level runs whose loading is timed: the run itself, or one per entry of the family's
    ``bench.DATA_VIEWS`` (``{name: arch keys}``) where what the loaders read depends on the architecture
    (Clair3: the pileup or the full-alignment tensors), named by the view in the ``arch`` column."""
    views = getattr(bench_module(run.family), "DATA_VIEWS", None)
    if not views:
        return {run.arch_name: run}
    return {
        name: dataclasses.replace(run, arch_name=name, arch={**run.arch, **keys})
        for name, keys in views.items()
    }


def bench_data(
    run: Run, paths: Mapping[str, str | Path], out_tsv: str | Path, settings: Settings
) -> list[dict[str, Any]]:
    """The data tasks the family declares. ``loading``: examples/s of the legacy pipeline (tf.data on the
    records, or the plain loop's own reader) vs the HDF5 DataModule (0 and 2 workers), per data view
    (:func:`data_views`). ``convert``: the legacy reader (``bench.legacy_reads``) and the converter, each
    over every legacy file with one thread, in MB/s of input (also per CPU second) and examples/s, the
    reader the baseline (:mod:`tf2lightning.bench.reading`). ``paths``: ``legacy_dir``, ``h5``."""
    out_tsv = Path(out_tsv)
    tasks = declared_tasks(run.family)
    baseline = LEGACY_READER if plain_torch(run.family) else "tf.data"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=out_tsv.parent, prefix=".bench.") as tmp:
        work = Path(tmp)
        side_paths = {**paths, "scratch": work}
        sides = ("torch",) if plain_torch(run.family) else ("tf", "torch")
        if "loading" in tasks:
            for view in data_views(run).values():
                loading = [
                    run_side(request(view, side, "loading", settings, side_paths), work) for side in sides
                ]
                rows += result_rows(view, loading, settings, baseline=baseline)
        if "convert" in tasks:
            one_core = dataclasses.replace(settings, threads=1)
            has_reader = hasattr(bench_module(run.family), "legacy_reads")
            converting = [
                run_side(request(run, side, "convert", one_core, side_paths), work)
                for side in sides
                if side == "torch" or has_reader
            ]
            rows += result_rows(run, converting, one_core, baseline=baseline if has_reader else None)
    write_tsv(out_tsv, rows, COLUMNS)
    return rows


def _number(value: Any, spec: str, unit: str = "") -> str:
    return "–" if value in ("", None) else format(float(value), spec) + unit


def _rate(row: Mapping[str, Any]) -> str:
    rate = float(row["rate"])
    return f"{format(rate, ',.0f' if rate >= 100 else '.3g')} {row['unit']}/s"


def _per_core(row: Mapping[str, Any]) -> str:
    if row.get("rate_per_core") in ("", None):
        return "–"
    rate = float(row["rate_per_core"])
    return f"{format(rate, ',.0f' if rate >= 100 else '.3g')} {row['unit']}/s"


MARKDOWN_CELLS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "rate (median)": _rate,
    "per core": _per_core,
    "examples/s": lambda r: _number(r.get("examples_per_s"), ",.0f"),
    "ratio": lambda r: _number(r["ratio"], ".2f"),
    "baseline": lambda r: r["baseline"] or "–",
    "max abs error vs TF": lambda r: _number(r["max_abs_err_vs_tf"], ".1e"),
    "peak RSS": lambda r: _number(r["peak_rss_mb"], ",.0f", " MB"),
    "TFLOP/s": lambda r: _number(r.get("achieved_tflops"), ".3g"),
    "MFU": lambda r: _number(r.get("mfu"), ".1%"),
}
"""The cells of a timed row after its combination, task, side and variant; per core, examples/s, TFLOP/s
and MFU only in tables where some row has them."""


def markdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Benchmark rows as a Markdown table (the README's form, and what the benchmark scripts print); a
    variant that did not run shows its error instead of a rate."""
    rows = list(rows)
    cells = dict(MARKDOWN_CELLS)
    optional = (("per core", "rate_per_core"), ("examples/s", "examples_per_s"))
    for title, column in (*optional, ("TFLOP/s", "achieved_tflops"), ("MFU", "mfu")):
        if all(r.get(column) in ("", None) for r in rows):
            del cells[title]
    titles = ["combination", "task", "side", "variant", *cells]
    lines = ["| " + " | ".join(titles) + " |", "|---" * len(titles) + "|"]
    for row in rows:
        where = f"{row['family']} {row['dataset']}" + (f"_{row['arch']}" if row["arch"] else "")
        head = f"| {where} | {row['task']} | {row['side']} | {row['variant']} |"
        if row["status"] != "ok":
            lines.append(f"{head} {row['status']} |" + " |" * (len(cells) - 1))
            continue
        lines.append(head + "".join(f" {cell(row)} |" for cell in cells.values()))
    return "\n".join(lines)
