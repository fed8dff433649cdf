"""A family's optional benchmark module ``families/<name>/bench.py`` (see :mod:`tf2lightning.bench`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tf2lightning.families import FAMILIES, family_module, family_spec


def bench_module(family: str) -> Any | None:
    """The family's ``bench`` module, or None when it declares none (only inference is benchmarked)."""
    import importlib.util

    name = f"{FAMILIES[family]}.bench"
    return family_module(family, "bench") if importlib.util.find_spec(name) else None


def plain_torch(family: str) -> bool:
    """Whether the family was ported from plain PyTorch: no TF side, its plain loop is the baseline."""
    return family_spec(family).legacy_framework == "torch"


def declared_tasks(family: str) -> tuple[str, ...]:
    """The tasks the family can benchmark: its ``bench.TASKS``, with ``inference`` always for TF families.

    Families ported from plain PyTorch have no TF side and no inference comparison; what their
    ``bench.TASKS`` declares compares their plain loop (and its data reader) with Lightning (and the HDF5
    DataModule).
    """
    module = bench_module(family)
    extra = tuple(getattr(module, "TASKS", ())) if module else ()
    base = () if plain_torch(family) else ("inference",)
    return (*base, *(t for t in extra if t not in base))


def extra_tables(family: str) -> list[str]:
    """Benchmark TSVs written outside the workflow that the family's report pages show too (its
    ``bench.extra_tables()``, e.g. a size too slow for the demo); none by default."""
    module = bench_module(family)
    return list(module.extra_tables()) if module and hasattr(module, "extra_tables") else []


def hook(family: str, name: str) -> Callable[..., Any]:
    """A named factory of the family's bench module; a missing one is an error naming the family and hook."""
    module = bench_module(family)
    function = getattr(module, name, None) if module else None
    if function is None:
        raise NotImplementedError(f"family {family!r} has no bench.{name} (see tf2lightning.bench)")
    return function
