"""The tables of the README's "Benchmarks and the report" section, from the results of a finished run.

    tf2lightning bench-table results        # after `make demo` (or any `snakemake ... all`)

Reads every ``results/<family>/*/bench/*.tsv`` and ``results/report/machine.json``; columns are read by
name, so rows with columns or variants this module does not know still print (under their own names).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from tf2lightning.bench.machine import describe
from tf2lightning.bench.suite import MARKDOWN_CELLS
from tf2lightning.core.tsv import read_tsv

Row = Mapping[str, str]

PER_VARIANT_FAMILIES = ("dga",)
"""Families shown variant by variant, every task (the README's DGA table)."""

LABELS = {
    "tf.function": "TF `tf.function`",
    "keras": "TF Keras `model(x)`",
    "eager": "torch eager",
    "torchscript": "TorchScript",
    "onnxruntime": "ONNX Runtime (our export)",
    "tf2onnx+onnxruntime": "tf2onnx → ONNX Runtime (generic route)",
    "tf2onnx+onnx2torch": "tf2onnx → onnx2torch (generic route)",
    "keras train step": "Keras train step",
    "plain loop": "plain torch loop",
    "lightning": "Lightning",
    "tf.data": "`tf.data` on the legacy records",
    "legacy reader": "the plain loop's reader",
    "DataModule 0 workers": "HDF5 DataModule, 0 workers",
    "DataModule 2 workers": "HDF5 DataModule, 2 workers",
    "converter": "converter (legacy → HDF5)",
}
"""README names of the benchmark variants; an unknown variant keeps its own name."""

TASK_ORDER = ("inference", "generic_route", "training", "loading", "convert")
"""The order of the per-variant table (the generic route is shown as inference); unknown tasks last."""

_rate, _ratio = MARKDOWN_CELLS["rate (median)"], MARKDOWN_CELLS["ratio"]
_error, _rss = MARKDOWN_CELLS["max abs error vs TF"], MARKDOWN_CELLS["peak RSS"]
_per_core, _examples = MARKDOWN_CELLS["per core"], MARKDOWN_CELLS["examples/s"]


def bench_rows(results: Path) -> list[dict[str, str]]:
    """Every row of ``results/<family>/*/bench/*.tsv``, in path order, with ``source`` (the file)."""
    paths = sorted(p for p in results.glob("*/*/bench/*.tsv") if p.parent.parent.parent.parent == results)
    return [{**row, "source": str(path)} for path in paths for row in read_tsv(path)]


def machine_line(results: Path) -> str:
    """The machine of ``results/report/machine.json`` in one line, with its memory (or says it is missing)."""
    path = results / "report" / "machine.json"
    if not path.exists():
        return f"Machine: unknown ({path} missing: the run did not reach `bench_machine`)"
    info = json.loads(path.read_text())
    memory = f", {info['memory_gib']} GiB memory" if info.get("memory_gib") else ""
    return f"Machine: {describe(info)}{memory}"


def _ok(row: Row) -> bool:
    return row.get("status", "ok") == "ok" and row.get("rate", "") not in ("", None)


def _cell(row: Row | None, *cells: Callable[[Row], str]) -> str:
    """``rate`` (and the other cells in parentheses) of a timed row; its error where it failed; ``–``."""
    if row is None:
        return "–"
    if not _ok(row):
        return f"failed: {row.get('status') or 'no rate'}"
    extra = ", ".join(cell(row) for cell in cells)
    return _rate(row) + (f" ({extra}×)" if extra else "")


def _is_base(row: Row) -> bool:
    return row["variant"] == row.get("baseline")


def _label(row: Row) -> str:
    return LABELS.get(row["variant"], row["variant"]) + (" (baseline)" if _is_base(row) else "")


def _settings(rows: Sequence[Row]) -> str:
    """The batch sizes, threads and devices the rows ran with."""
    parts = []
    for column, name in (("batch_size", "batch"), ("threads", "threads"), ("device", "device")):
        values = sorted({r[column] for r in rows if r.get(column)}, key=lambda v: (len(v), v))
        if values:
            parts.append(f"{name} {' / '.join(values)}")
    return ", ".join(parts)


def _table(titles: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(titles) + " |", "|---" * len(titles) + "|"]
    return "\n".join([*out, *("| " + " | ".join(line) + " |" for line in lines)])


def per_variant_table(rows: Sequence[Row], family: str) -> str:
    """Every variant of every task of ``family``: rate (convert: per core first), ratio vs the baseline,
    error vs TF, peak RSS."""
    order = {task: i for i, task in enumerate(TASK_ORDER)}
    mine = sorted((r for r in rows if r["family"] == family), key=lambda r: order.get(r["task"], len(order)))
    lines = [
        [
            "inference" if r["task"] == "generic_route" else r["task"],
            _label(r),
            _core_cell(r),
            _ratio(r),
            _error(r),
            _rss(r),
        ]
        for r in mine
    ]
    titles = ["task", "variant", "rate (median)", "ratio vs baseline", "max abs error vs TF", "peak RSS"]
    return _table(titles, lines)


def _by_variant(rows: Iterable[Row]) -> dict[tuple[str, str, str], dict[str, Row]]:
    """``(family, dataset, arch) -> {variant: row}``, in first-seen order."""
    groups: dict[tuple[str, str, str], dict[str, Row]] = {}
    for r in rows:
        groups.setdefault((r["family"], r["dataset"], r.get("arch", "")), {})[r["variant"]] = r
    return groups


def training_table(rows: Sequence[Row], baseline: str) -> str:
    """Training rows whose baseline is ``baseline`` (``keras train step``: TF families; ``plain loop``:
    families ported from plain PyTorch): the baseline, the plain torch loop, Lightning, Lightning's ratio."""
    chosen = [r for r in rows if r["task"] == "training" and r.get("baseline") == baseline]
    lines = []
    for (family, dataset, arch), variants in _by_variant(chosen).items():
        columns = [baseline, "plain loop"] if baseline != "plain loop" else [baseline]
        lightning = variants.get("lightning")
        ratio = _ratio(lightning) if lightning and _ok(lightning) else "–"
        cells = [_cell(variants.get(v)) for v in [*columns, "lightning"]]
        lines.append([family, f"{dataset}_{arch}" if arch else dataset, *cells, ratio])
    head = [LABELS[baseline], "plain torch loop"] if baseline != "plain loop" else ["plain loop"]
    base = "Keras" if baseline == "keras train step" else "plain"
    return _table(["family", "combination", *head, "Lightning", f"Lightning / {base}"], lines)


def loading_table(rows: Sequence[Row]) -> str:
    """Per dataset (and data view): the legacy pipeline (the baseline), then every other loading variant by
    name (the HDF5 DataModule with 0 and 2 workers), with its ratio to the baseline."""
    loading = _by_variant(r for r in rows if r["task"] == "loading")
    columns = list(dict.fromkeys(v for vs in loading.values() for v, r in vs.items() if not _is_base(r)))
    lines = []
    for (family, dataset, view), variants in loading.items():
        base = next((r for r in variants.values() if _is_base(r)), None)
        lines.append(
            [
                f"{family} {dataset}" + (f", {view}" if view else ""),
                f"{_cell(base)} ({base['variant']})" if base else "–",
                *(_cell(variants.get(c), _ratio) for c in columns),
            ]
        )
    return _table(["data", "legacy pipeline (baseline)", *(LABELS.get(c, c) for c in columns)], lines)


def _core_cell(row: Row | None) -> str:
    """MB/s of input per CPU second (wall MB/s, examples/s) of a convert row (its plain rate where it has
    no CPU seconds); its error; ``–``."""
    if row is None or not _ok(row) or not row.get("rate_per_core"):
        return _cell(row)
    return f"{_per_core(row)} per core ({_rate(row)}, {_examples(row)} examples/s)"


def conversion_table(rows: Sequence[Row]) -> str:
    """Per dataset: the legacy reader (the baseline) and the converter (every other ``convert`` variant)
    over the same legacy files with one thread, in MB/s of input per core (wall MB/s, examples/s), and the
    converter's ratio per core."""
    lines = []
    for (family, dataset, _), variants in _by_variant(r for r in rows if r["task"] == "convert").items():
        base = next((r for r in variants.values() if _is_base(r)), None)
        others = [r for r in variants.values() if r is not base]
        lines.append(
            [
                f"{family} {dataset}",
                LABELS.get(base["variant"], base["variant"]) if base else "–",
                _core_cell(base),
                "; ".join(_core_cell(r) for r in others) or "–",
                ("; ".join(_ratio(r) for r in others if _ok(r)) if base else "") or "–",
            ]
        )
    titles = ["data", "reader (baseline)", "reader", "converter", "converter / reader per core"]
    return _table(titles, lines)


def readme_tables(results: Path) -> str:
    """The machine line and every table of the README's benchmark section, each under a caption naming
    its rows' files, batch sizes and threads."""
    rows = bench_rows(results)
    if not rows:
        raise FileNotFoundError(results / "<family>/*/bench/*.tsv")
    sections: list[tuple[str, Sequence[Row], str]] = []
    for family in PER_VARIANT_FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        sections.append((f"{family}, every variant", mine, per_variant_table(rows, family)))
    for baseline, what in (("plain loop", "plain loop vs Lightning"), ("keras train step", "TF vs torch")):
        chosen = [r for r in rows if r["task"] == "training" and r.get("baseline") == baseline]
        sections.append((f"training, {what}", chosen, training_table(rows, baseline)))
    for task, title, table in (
        ("loading", "loading", loading_table),
        ("convert", "conversion", conversion_table),
    ):
        sections.append((title, [r for r in rows if r["task"] == task], table(rows)))
    out = [machine_line(results)]
    for title, chosen, table in sections:
        if not chosen:
            out.append(f"\n{title}: no rows under {results}")
            continue
        files = sorted({_glob_name(results, r["source"]) for r in chosen})
        out.append(f"\n{title} ({_settings(chosen)}; {', '.join(files)}):\n\n{table}")
    return "\n".join(out)


def _glob_name(results: Path, source: str) -> str:
    """``results/<family>/*/bench/<task>.tsv`` for one row's file."""
    family, _, _, name = Path(source).relative_to(results).parts
    return f"{results}/{family}/*/bench/{name}"
