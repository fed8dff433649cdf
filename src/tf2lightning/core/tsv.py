"""Tab-separated tables: the format of every report the workflow writes (eval.tsv, parity.tsv, ...)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tf2lightning.core.atomic import atomic_path


def format_value(value: Any) -> str:
    """Floats with 6 significant digits (tolerances like 1e-5 round-trip), everything else as ``str``.

    A value near 1 loses up to 5e-6 here, so the tables are for reading: code that compares results takes
    the unrounded values saved beside them (e.g. the ``history`` in ``model.pt``)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_tsv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` with a header line, atomically; a row missing a column is an error."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([format_value(row[c]) for c in columns])


def read_tsv(path: str | Path) -> list[dict[str, str]]:
    """Read a TSV written by :func:`write_tsv` (lines starting with ``#`` are comments)."""
    with open(path, newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        return list(csv.DictReader(lines, delimiter="\t"))
