"""An upstream checkpoint's sizes into the config, before any job (no framework).

An arch whose ``legacy_model`` is upstream's checkpoint folder takes every size that the variables' shapes
fix (:func:`weights.checkpoint_sizes`) from the checkpoint; a configured value that differs is an error
naming both (the head count too: the attention kernels are ``(d, heads, head_dim)``). The Performer's
``seed`` shapes no variable, so such an arch must give it, under upstream's constructor argument name.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.epibert.weights import checkpoint_sizes, upstream_shapes

NOT_INFERABLE = ("seed",)


def _runs(section: MutableMapping[str, Any]) -> list[tuple[str, str]]:
    given = section.get("runs")
    if given is not None:
        return [(d, a) for d, a in given]
    return [(d, a) for d in section.get("datasets", {}) for a in section.get("archs", {})]


def _fill(target: MutableMapping[str, Any], key: str, value: Any, where: str, path: str) -> None:
    if key in target and target[key] != value:
        raise ConfigError(f"{where}.{key} is {target[key]!r}, but the checkpoint {path} has {value!r}")
    target[key] = value


def complete_section(section: MutableMapping[str, Any], where: str) -> None:
    """Fill (or check) the sizes of every arch with a ``legacy_model`` from its checkpoint, and
    ``n_motifs`` of the datasets it runs with; ``where`` is the section's key path for messages. A
    ``{dataset}`` in ``legacy_model`` stands for each dataset the arch runs with (one checkpoint each)."""
    runs = _runs(section)
    for arch_name, arch in (section.get("archs") or {}).items():
        given = (arch or {}).get("legacy_model")
        if not given:
            continue
        key = f"{where}.archs.{arch_name}"
        missing = [k for k in NOT_INFERABLE if k not in arch]
        if missing:
            raise ConfigError(
                f"{key}: give {' and '.join(missing)}: the checkpoint {given} cannot say it (the Performer's "
                "projection seed; upstream's training scripts pass seed=val_data_seed)"
            )
        datasets = [d for d, a in runs if a == arch_name and d in (section.get("datasets") or {})]
        for dataset in datasets if "{dataset}" in str(given) else datasets[:1] or [None]:
            path = str(given).replace("{dataset}", dataset or "")
            try:
                sizes = checkpoint_sizes(upstream_shapes(path))
            except (FormatError, OSError) as error:
                raise ConfigError(f"{key}.legacy_model: {error}") from None
            n_motifs = sizes.pop("n_motifs")
            for name, value in sizes.items():
                _fill(arch, name, value, key, path)
            for paired in datasets if "{dataset}" not in str(given) else [dataset]:
                if paired is not None:
                    _fill(
                        section["datasets"][paired], "n_motifs", n_motifs, f"{where}.datasets.{paired}", path
                    )
