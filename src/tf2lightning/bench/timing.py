"""Repeated timings: warm-up calls, then ``repeats`` timed calls -> median, IQR and throughput.

Framework-free. A single timing is never reported: every number is the median of repeated runs.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs, each processing ``items`` examples (or bytes, or steps)."""

    samples: tuple[float, ...]
    items: float = 1.0
    unit: str = "examples"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Timing needs at least one sample")
        if min(self.samples) <= 0:
            raise ValueError(f"timings must be positive seconds, got {min(self.samples)}")

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def iqr_s(self) -> float:
        """Inter-quartile range of the samples (0 for fewer than two)."""
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return float(q3 - q1)

    @property
    def rate(self) -> float:
        """Items per second at the median time."""
        return self.items / self.median_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples_s": list(self.samples),
            "items": self.items,
            "unit": self.unit,
            "median_s": self.median_s,
            "iqr_s": self.iqr_s,
            "rate": self.rate,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(tuple(data["samples_s"]), data["items"], data["unit"], dict(data.get("extra", {})))


def measure(
    fn: Callable[[], Any],
    *,
    items: float,
    warmup: int = 2,
    repeats: int = 5,
    unit: str = "examples",
    sync: Callable[[], None] | None = None,
    cpu: bool = False,
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; ``sync`` (e.g. a CUDA
    synchronize) runs before each clock read, so asynchronous work is counted. With ``cpu``, the median
    CPU seconds of this process (all its threads) per timed call go to ``extra["cpu_s"]``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats} warmup={warmup}")
    for _ in range(warmup):
        fn()
    samples, cpu_samples = [], []
    for _ in range(repeats):
        if sync:
            sync()
        cpu_start, start = cpu_seconds(), time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - start)
        cpu_samples.append(cpu_seconds() - cpu_start)
    extra = {"cpu_s": float(statistics.median(cpu_samples))} if cpu else {}
    return Timing(tuple(samples), float(items), unit, extra)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def from_durations(durations: Sequence[float], *, items: float, warmup: int, unit: str) -> Timing:
    """A Timing from externally recorded durations (e.g. per training step inside a Trainer), the first
    ``warmup`` discarded."""
    kept = tuple(durations[warmup:])
    if not kept:
        raise ValueError(f"{len(durations)} durations recorded, none left after {warmup} warm-up")
    return Timing(kept, float(items), unit)
