"""The ``convert`` task's shared pieces (framework-free): the legacy reader and the converter each make one
pass over every legacy input file, timed in MB of input and in examples, with the CPU seconds they used.

Both run in a child with one thread; MB are the legacy files' bytes on disk (compressed as stored), so
``rate`` is MB/s of input, ``rate_per_core`` MB per CPU second and ``examples_per_s`` examples/s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tf2lightning.bench.timing import Timing, measure

CONVERT_REPEATS = 3
"""Timed passes of the reader and of the converter at most (after one warm-up pass)."""


def input_megabytes(legacy_dir: str | Path) -> float:
    """MB (1e6 bytes) of every file under ``legacy_dir``, as stored."""
    return sum(p.stat().st_size for p in Path(legacy_dir).rglob("*") if p.is_file()) / 1e6


def count_examples(batch: Any) -> int:
    """Examples in one batch: the length of its first tensor (nested dicts, tuples and lists flattened)."""
    while isinstance(batch, Mapping | tuple | list):
        batch = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
    return int(batch.shape[0]) if hasattr(batch, "shape") else len(batch)


def timed_pass(one_pass: Callable[[], int], megabytes: float, request: Mapping[str, Any]) -> Timing:
    """Repeated passes of ``one_pass() -> examples``: items = ``megabytes`` (unit MB), CPU seconds and the
    first pass's examples in ``extra``."""
    counts: list[int] = []
    timing = measure(
        lambda: counts.append(one_pass()),
        items=megabytes,
        warmup=1,
        repeats=min(int(request["repeats"]), CONVERT_REPEATS),
        unit="MB",
        cpu=True,
    )
    return replace(timing, extra={**timing.extra, "examples": counts[0]})


def timed_reads(
    pipelines: Sequence[Iterable[Any]], legacy_dir: str | Path, request: Mapping[str, Any]
) -> Timing:
    """Passes over every batch of ``pipelines`` (together, the reader over all of ``legacy_dir``)."""
    return timed_pass(
        lambda: sum(count_examples(batch) for pipeline in pipelines for batch in pipeline),
        input_megabytes(legacy_dir),
        request,
    )


def converted_examples(h5: str | Path) -> int:
    """Rows a converter wrote: ``n_examples`` of the file, or summed over its groups (Clair3's networks)."""
    import h5py

    with h5py.File(h5, "r") as f:
        if "n_examples" in f.attrs:
            return int(f.attrs["n_examples"])
        return sum(int(g.attrs.get("n_examples", 0)) for g in f.values() if isinstance(g, h5py.Group))
