"""Report pages: one HTML summary per combination (parity, metrics, throughput ratios, memory, machine)
and the torch-side points of the TF-vs-torch scatter plot."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.bench.family_hooks import bench_module, plain_torch
from tf2lightning.bench.suite import CORE_COLUMNS, FLOP_COLUMNS
from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.tsv import read_tsv
from tf2lightning.run import Run

STYLE = """<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:right}th{background:#eee}
td:first-child,th:first-child{text-align:left}.fail{color:#b00020;font-weight:bold}.ok{color:#1b5e20}</style>"""


def parity_points(
    run: Run, reference_h5: str | Path, weights: str | Path
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per legacy output: (TF reference values, the port's values) on the reference probe inputs."""
    from tf2lightning.core.parity import capture_activations
    from tf2lightning.core.reference_file import read_reference
    from tf2lightning.families import family_module
    from tf2lightning.stages.weights import load_port

    model_module = family_module(run.family, "model")
    reference = read_reference(reference_h5)
    make_inputs = getattr(model_module, "parity_inputs", lambda arrays: tuple(arrays.values()))
    outputs, _ = capture_activations(load_port(run, weights), {}, make_inputs(reference.inputs))
    return {
        name: (reference.outputs[name], fn(outputs).detach().numpy())
        for name, fn in model_module.PARITY_OUTPUTS.items()
        if name in reference.outputs
    }


def _cell(value: Any) -> str:
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        css = (
            ' class="fail"' if text in ("false", "FAIL") else ' class="ok"' if text in ("true", "ok") else ""
        )
        return f"<td{css}>{html.escape(text)}</td>"
    return f"<td>{number:.4g}</td>" if text not in ("", "nan") else "<td></td>"


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _comments(path: str | Path) -> list[str]:
    with open(path) as handle:
        return [line[1:].strip() for line in handle if line.startswith("#")]


BENCH_COLUMNS = (
    "task",
    "side",
    "variant",
    "device",
    "batch_size",
    "threads",
    "rate",
    "unit",
    "rate_per_core",
    "examples_per_s",
    "cpu_cores",
    "achieved_tflops",
    "mfu",
    "median_s",
    "iqr_s",
    "repeats",
    "ratio",
    "baseline",
    "max_abs_err_vs_tf",
    "peak_rss_mb",
    "status",
)


OPTIONAL_COLUMNS = (*CORE_COLUMNS, *FLOP_COLUMNS, "max_abs_err_vs_tf")
"""Shown only when a row has them: no MFU on a CPU, no error vs TF for a family ported from plain PyTorch,
rates per core only with the convert task."""


def bench_columns(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The benchmark table's columns, without the optional ones no row has."""
    return tuple(c for c in BENCH_COLUMNS if c not in OPTIONAL_COLUMNS or any(r.get(c) for r in rows))


def combination_rows(run: Run, tables: Sequence[str | Path]) -> list[dict[str, str]]:
    """The benchmark rows of one combination; where the family's loading has data views
    (``bench.data_view(run)``), only the loading rows of this combination's view."""
    rows = [row for table in tables for row in read_tsv(table)]
    module = bench_module(run.family)
    if module is None or not hasattr(module, "data_view"):
        return rows
    view = module.data_view(run)
    return [row for row in rows if row["task"] != "loading" or row["arch"] == view]


def legacy_label(run: Run) -> str:
    """What the family was migrated from: ``TensorFlow`` or ``plain PyTorch``."""
    return "plain PyTorch" if plain_torch(run.family) else "TensorFlow"


def machine_line(info: Mapping[str, Any]) -> str:
    from tf2lightning.bench.machine import describe

    return html.escape(describe(dict(info)))


def summary_html(
    run: Run,
    parity_tsv: str | Path,
    eval_tsv: str | Path,
    bench_tsvs: Sequence[str | Path],
    machine_json: str | Path,
    out_html: str | Path,
) -> None:
    """The combination's page: parity verdict and per-tensor errors, eval metrics, benchmark table."""
    parity_rows = read_tsv(parity_tsv)
    outputs = [r for r in parity_rows if r["kind"] == "output"]
    worst = max(parity_rows, key=lambda r: float(r["max_abs_err"]))
    bench_rows = combination_rows(run, bench_tsvs)
    info = json.loads(Path(machine_json).read_text())
    parts = [
        f"<html><head><meta charset='utf-8'>{STYLE}</head><body>",
        f"<h2>{html.escape(run.name)}</h2>",
        f"<p>Machine: {machine_line(info)}</p>",
        f"<h3>Parity ({legacy_label(run)} legacy model vs the port, reference probe inputs)</h3>",
        "<p>" + "<br>".join(html.escape(c) for c in _comments(parity_tsv)[:5]) + "</p>",
        f"<p>Largest error of any output or layer: {float(worst['max_abs_err']):.3g} "
        f"({html.escape(' '.join((worst['source'], worst['kind'], worst['legacy_name'])))})</p>",
        html_table(
            outputs, ("source", "legacy_name", "shape", "max_abs_err", "max_rel_err", "tolerance", "ok")
        ),
        "<details><summary>every layer</summary>",
        html_table(
            parity_rows, ("source", "kind", "legacy_name", "torch_name", "max_abs_err", "tolerance", "ok")
        ),
        "</details>",
        "<h3>Evaluation (held-out test split, Lightning-trained port)</h3>",
        html_table(read_tsv(eval_tsv), ("metric", "value")),
        "<h3>Throughput, ratios and peak memory</h3>",
        "<p>Median of repeated runs after warm-up; ratio = rate / baseline rate (&gt;1: faster than the "
        "baseline: TF, or for a family ported from plain PyTorch its plain loop and its reader). Each side "
        "ran in its own process; peak_rss_mb is that process's peak resident memory. achieved_tflops: "
        "model FLOPs (counted once per variant's work) per second at the median; mfu: that over the "
        "device's dense peak, only on a GPU with a known peak.</p>",
        html_table(bench_rows, bench_columns(bench_rows)),
        "</body></html>",
    ]
    with atomic_path(out_html) as tmp:
        tmp.write_text("\n".join(parts))


def machine_html(info: Mapping[str, Any], out_html: str | Path) -> None:
    """The machine record as a page (and nothing else)."""
    rows = [{"key": k, "value": v} for k, v in info.items() if k != "versions"]
    rows += [{"key": f"version: {k}", "value": v} for k, v in info.get("versions", {}).items()]
    rows = [
        {"key": r["key"], "value": "; ".join(r["value"]) if isinstance(r["value"], list) else r["value"]}
        for r in rows
    ]
    body = "".join(
        f"<tr><td>{html.escape(str(r['key']))}</td><td>{html.escape(str(r['value']) or '-')}</td></tr>"
        for r in rows
    )
    head = f"<html><head><meta charset='utf-8'>{STYLE}</head>"
    page = f"{head}<body><h2>Machine</h2><table>{body}</table></body></html>"
    with atomic_path(out_html) as tmp:
        tmp.write_text(page)


def combination_report(run: Run, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
    """One combination's report page and figures: parity scatter (legacy vs port), training curves,
    throughput bars and the summary page. ``inputs``/``outputs`` are the report rule's, by name."""
    from tf2lightning.bench import plots

    legacy = legacy_label(run)
    bench = list(inputs["bench"])
    points = parity_points(run, inputs["reference"], inputs["weights"])
    plots.parity_scatter(points, outputs["parity"], f"{run.name}: {legacy} vs the port", legacy)
    legacy_history = Path(inputs["legacy_model"]) / "history.json"
    plots.training_curves(inputs["history"], legacy_history, outputs["training"], f"{run.name}: training")
    plots.throughput_bars(combination_rows(run, bench), outputs["throughput"], f"{run.name}: throughput")
    summary_html(run, inputs["parity"], inputs["eval"], bench, inputs["machine"], outputs["summary"])
