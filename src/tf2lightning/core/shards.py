"""Sharded data conversion: one HDF5 file per input file (or group), gathered into one virtual dataset.

A family that can convert its legacy files one at a time gives its ``data`` module two functions:

- ``shards(run, legacy_dir) -> list[Shard]``: the dataset's input files, grouped into shards (one split
  each), in the order their rows should appear;
- ``convert_shard(run, legacy_dir, shard, out_h5)``: the rows of those files, in the family's HDF5 layout
  (the same fields as its one-file ``convert``), written atomically.

The workflow converts every shard in its own job and :func:`gather` writes ``data.h5``: per field one HDF5
virtual dataset concatenating the shards' rows (the shard files stay where they are, referenced by paths
relative to ``data.h5``), so every reader of ``data.h5`` (``H5Examples``, ``read_all``, the DataModules)
reads it unchanged. A changed input file reconverts its own shard only.

A file of several tables of different lengths (Clair3: ``pileup/`` and ``full_alignment/``) keeps each
table in an HDF5 group: a shard then holds the rows of one table, its datasets in that group, and each
group of ``data.h5`` gathers the shards that hold it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.hdf5_store import FORMAT_VERSION, _attr_value, read_attrs
from tf2lightning.errors import FormatError

__all__ = ["MERGED_ATTRS", "Shard", "gather", "shard_name"]

MERGED_ATTRS = ("n_examples", "format_version", "skipped_records", "skipped_record_indices")
"""Attributes a shard has for itself; :func:`gather` sums or joins them. Every other one must agree."""

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class Shard:
    """Input files converted together into one HDF5 file; ``name`` is unique in the dataset."""

    name: str
    split: str
    paths: tuple[Path, ...]


def shard_name(legacy_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """A file-name-safe shard name from a file's path inside the legacy dataset (``train/K562.tfr`` ->
    ``train__K562.tfr``)."""
    relative = Path(path).resolve().relative_to(Path(legacy_dir).resolve())
    return "__".join(_SAFE.sub("_", part) for part in relative.parts)


Layout = dict[str, tuple[np.dtype, tuple[int, ...], int]]


def _layout(h5: h5py.File, where: str) -> tuple[str, Layout]:
    """The shard's group (``""``: the file's root) and ``{dataset: (dtype, row shape, rows)}`` in it,
    checked for one group and one length."""
    found: dict[str, h5py.Dataset] = {}

    def keep(name: str, obj: object) -> None:  # visititems stops at a callback returning a value
        if isinstance(obj, h5py.Dataset):
            found[name] = obj

    h5.visititems(keep)
    if not found:
        raise FormatError(f"{where}: no datasets in the shard")
    groups = sorted({name.rpartition("/")[0] for name in found})
    if len(groups) != 1:
        raise FormatError(f"{where}: datasets in several groups {groups}; a shard holds one table")
    fields = {
        name.rpartition("/")[2]: (obj.dtype, obj.shape[1:], obj.shape[0]) for name, obj in found.items()
    }
    lengths = {rows for _, _, rows in fields.values()}
    if len(lengths) != 1:
        raise FormatError(f"{where}: datasets of different lengths {sorted(lengths)} in the shard")
    return groups[0], fields


def _common_dtype(name: str, dtypes: list[np.dtype], where: list[str]) -> np.dtype:
    """One dtype for a field over all shards: equal, or fixed-width byte strings (the widest wins)."""
    first = dtypes[0]
    if all(dt == first for dt in dtypes):
        return first
    if all(dt.kind == "S" for dt in dtypes):
        return max(dtypes, key=lambda dt: dt.itemsize)
    odd = next(i for i, dt in enumerate(dtypes) if dt != first)
    raise FormatError(f"{where[odd]}: field {name!r} has dtype {dtypes[odd]}, but {where[0]} has {first}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def _merge_attrs(shards: list[dict[str, Any]], where: list[str]) -> dict[str, Any]:
    merged = {k: v for k, v in shards[0].items() if k not in MERGED_ATTRS}
    skipped: dict[str, list[int]] = {}
    for attrs, name in zip(shards, where, strict=True):
        for key, value in attrs.items():
            if key in MERGED_ATTRS:
                continue
            if key not in merged or not _same(merged[key], value):
                raise FormatError(
                    f"{name}: attribute {key!r} is {value!r}, but {where[0]} has {shards[0].get(key)!r}"
                )
        missing = set(merged) - set(attrs)
        if missing:
            raise FormatError(f"{name}: attributes {sorted(missing)} missing (present in {where[0]})")
        skipped.update(attrs.get("skipped_record_indices") or {})
    if any("skipped_records" in attrs for attrs in shards):
        merged["skipped_records"] = sum(int(attrs.get("skipped_records", 0)) for attrs in shards)
        merged["skipped_record_indices"] = skipped
    return merged


def _check_fields(layouts: list[Layout], where: list[str]) -> None:
    """The shards of one table have the same fields, each with the same row shape."""
    names = list(layouts[0])
    for layout, name in zip(layouts, where, strict=True):
        if list(layout) != names:
            raise FormatError(f"{name}: fields {list(layout)}, but {where[0]} has {names}")
        for field in names:
            if layout[field][1] != layouts[0][field][1]:
                raise FormatError(
                    f"{name}: field {field!r} has rows of shape {layout[field][1]}, "
                    f"but {where[0]} has {layouts[0][field][1]}"
                )


def _write_table(h5: h5py.Group, layouts: list[Layout], where: list[str], relative: list[str]) -> int:
    """One table's virtual datasets in ``h5`` (the file or a group) over its shards; returns its rows."""
    _check_fields(layouts, where)
    counts = [next(iter(layout.values()))[2] for layout in layouts]
    prefix = "" if h5.name == "/" else f"{h5.name.lstrip('/')}/"
    for field in layouts[0]:
        dtype = _common_dtype(field, [layout[field][0] for layout in layouts], where)
        shape = layouts[0][field][1]
        virtual = h5py.VirtualLayout(shape=(sum(counts), *shape), dtype=dtype)
        start = 0
        for source, rows in zip(relative, counts, strict=True):
            if rows:
                virtual[start : start + rows] = h5py.VirtualSource(
                    source, prefix + field, shape=(rows, *shape)
                )
            start += rows
        h5.create_virtual_dataset(field, virtual)
    h5.attrs["shards"] = _attr_value(relative)
    h5.attrs["shard_rows"] = _attr_value(counts)
    h5.attrs["n_examples"] = int(sum(counts))
    return int(sum(counts))


def gather(shard_files: Sequence[str | os.PathLike[str]], out_h5: str | os.PathLike[str]) -> int:
    """Write ``out_h5`` as virtual datasets over ``shard_files`` (in order); return the row count.

    The shards of a table (the file's root, or a group: see the module's doc) must have the same fields
    (dtype and row shape); every shard must have the same (root) attributes, except the per-shard counts
    in :data:`MERGED_ATTRS`. The shards are referenced relative to ``out_h5``'s folder. Each table gets the
    attributes ``n_examples``, ``shards`` (file names relative to ``out_h5``) and ``shard_rows``.
    """
    if not shard_files:
        raise FormatError(f"{out_h5}: no shards to gather")
    out = Path(out_h5)
    files = [Path(f) for f in shard_files]
    tables: dict[str, list[int]] = {}
    layouts, attrs = [], []
    for index, path in enumerate(files):
        try:
            with h5py.File(path, "r") as h5:
                group, layout = _layout(h5, str(path))
        except OSError as error:
            raise FormatError(f"{path}: not a readable HDF5 shard: {error}") from None
        tables.setdefault(group, []).append(index)
        layouts.append(layout)
        attrs.append(read_attrs(path))
        stored = attrs[-1].get("n_examples")
        rows = next(iter(layout.values()))[2]
        if stored is not None and int(stored) != rows:
            raise FormatError(f"{path}: attribute n_examples is {stored}, but the shard holds {rows} rows")
    if "" in tables and len(tables) > 1:
        named = next(files[tables[g][0]] for g in tables if g)
        raise FormatError(f"{named}: rows in a group, but {files[tables[''][0]]} has them at the root")
    merged = _merge_attrs(attrs, [str(f) for f in files])
    relative = [os.path.relpath(path.resolve(), out.resolve().parent) for path in files]
    total = 0
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        for group, members in tables.items():
            total += _write_table(
                h5.require_group(group) if group else h5,
                [layouts[i] for i in members],
                [str(files[i]) for i in members],
                [relative[i] for i in members],
            )
        for key, value in merged.items():
            h5.attrs[key] = _attr_value(value)
        h5.attrs["format_version"] = FORMAT_VERSION
    return total
