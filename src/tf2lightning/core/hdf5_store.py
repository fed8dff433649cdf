"""Example-major HDF5 files (h5py + hdf5plugin): one dataset per field, axis 0 indexes examples.

Written by :class:`H5Writer` (atomically, one example per chunk by default), read by :class:`H5Examples`
(a map-style dataset that opens the file lazily in each DataLoader worker), :func:`read_all` and
:func:`iter_batches`. This module never imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError

__all__ = [
    "CODECS",
    "FORMAT_VERSION",
    "Field",
    "H5Examples",
    "H5Writer",
    "codec_options",
    "iter_batches",
    "read_all",
    "read_attrs",
    "split_indices",
]

FORMAT_VERSION = 1

CODECS: tuple[str | None, ...] = ("bitshuffle-lz4", "blosc-lz4hc", "blosc-lz4", "lz4", "zstd", "gzip", None)


def codec_options(codec: str | None) -> dict[str, Any]:
    """``create_dataset`` keyword arguments for a codec name; "zstd" is level 3, "zstd-<level>" sets it."""
    if codec is None:
        return {}
    if codec == "bitshuffle-lz4":
        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    if codec == "blosc-lz4hc":
        return dict(hdf5plugin.Blosc(cname="lz4hc", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if codec == "blosc-lz4":  # Clair3-like int8 tensors: writes 6x faster than lz4hc, files 1.5x larger
        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if codec == "lz4":
        return dict(hdf5plugin.LZ4())
    if codec == "zstd" or codec.startswith("zstd-"):
        level = int(codec[5:]) if codec != "zstd" else 3
        return dict(hdf5plugin.Zstd(clevel=level))
    if codec == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    raise ValueError(f"unknown HDF5 codec {codec!r}; expected one of {CODECS} or 'zstd-<level>'")


@dataclass(frozen=True)
class Field:
    """One dataset: element dtype, per-example shape, codec name, rows per chunk.

    ``dtype`` may be ``str`` or ``bytes`` for variable-length strings (stored unfiltered: HDF5 filters would
    only see heap references, and Blosc crashes on them); use a fixed-width ``"S<n>"`` dtype to compress.
    """

    dtype: Any
    shape: tuple[int, ...] = ()
    codec: str | None = None
    chunk_rows: int = 1

    def h5_dtype(self) -> np.dtype:
        if self.dtype is str:
            return h5py.string_dtype("utf-8")
        if self.dtype is bytes:
            return h5py.string_dtype("ascii")
        return np.dtype(self.dtype)

    @property
    def is_vlen_string(self) -> bool:
        return self.dtype is str or self.dtype is bytes


def _attr_value(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple) and not isinstance(value, np.ndarray):
        return json.dumps(value)
    if value is None:
        return "null"
    return value


class H5Writer:
    """Append batches of examples to a new HDF5 file; the file appears only when the ``with`` block succeeds.

    >>> with H5Writer("x.h5", {"seq": Field(np.uint8, (1024,), "bitshuffle-lz4")}) as out:
    ...     out.append({"seq": codes})
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fields: Mapping[str, Field],
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if not fields:
            raise ValueError("H5Writer needs at least one field")
        for name, field in fields.items():
            if field.chunk_rows < 1:
                raise ValueError(f"field {name!r}: chunk_rows must be >= 1, got {field.chunk_rows}")
            if field.is_vlen_string and field.codec is not None:
                raise ValueError(
                    f"field {name!r}: variable-length strings cannot take codec {field.codec!r}; "
                    "use codec=None or a fixed-width 'S<n>' dtype"
                )
            codec_options(field.codec)  # fail early on unknown names
        self.path = Path(path)
        self.fields = dict(fields)
        self.attrs = dict(attrs or {})
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None

    def __enter__(self) -> H5Writer:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(h5py.File(tmp, "w"))
            for name, field in self.fields.items():
                shape = tuple(field.shape)
                self._file.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    chunks=(field.chunk_rows, *(max(d, 1) for d in shape)),
                    dtype=field.h5_dtype(),
                    **codec_options(field.codec),
                )
            self._stack = stack.pop_all()
        return self

    def append(self, batch: Mapping[str, Any]) -> None:
        """Append rows to some or all fields (axis 0 of each array is the example axis)."""
        if self._file is None:
            raise RuntimeError("H5Writer.append outside its `with` block")
        for name, values in batch.items():
            if name not in self.fields:
                raise KeyError(f"{self.path}: no field {name!r}; fields are {sorted(self.fields)}")
            field = self.fields[name]
            if field.is_vlen_string:
                array = np.asarray(values, dtype=object)
            else:
                array = np.asarray(values)
                target = field.h5_dtype()
                if array.dtype != target:
                    if not np.can_cast(array.dtype, target, "same_kind"):
                        raise FormatError(
                            f"{self.path}: field {name!r}: expected dtype {target}, found {array.dtype}"
                        )
                    array = array.astype(target)
            if array.shape[1:] != tuple(field.shape) or array.ndim == 0:
                raise FormatError(
                    f"{self.path}: field {name!r}: expected rows of shape {tuple(field.shape)}, "
                    f"found an array of shape {array.shape}"
                )
            dset = self._file[name]
            start = dset.shape[0]
            dset.resize(start + len(array), axis=0)
            try:
                dset[start:] = array
            except (ValueError, TypeError) as exc:
                raise FormatError(f"{self.path}: field {name!r}: cannot store rows: {exc}") from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        h5 = self._file
        self._file = None
        if exc_type is not None:
            stack.__exit__(exc_type, exc, tb)
            return
        with stack:
            assert h5 is not None
            counts = {name: h5[name].shape[0] for name in self.fields}
            first_name, n = next(iter(counts.items()))
            for name, count in counts.items():
                if count != n:
                    raise FormatError(
                        f"{self.path}: field {name!r} has {count} rows but {first_name!r} has {n}"
                    )
            for key, value in self.attrs.items():
                h5.attrs[key] = _attr_value(value)
            h5.attrs["n_examples"] = n
            h5.attrs["format_version"] = FORMAT_VERSION


# ----------------------------------------------------------------------------------------------- reading


def _validate(h5: h5py.File, path: str, keys: Sequence[str] | None) -> tuple[list[str], int]:
    """Check the requested datasets exist and share one length; return (keys, n_examples)."""
    if keys is None:
        keys = [name for name, obj in h5.items() if isinstance(obj, h5py.Dataset)]
    keys = list(keys)
    if not keys:
        raise FormatError(f"{path}: no datasets to read")
    expected = h5.attrs.get("n_examples")
    for key in keys:
        obj = h5.get(key)
        if not isinstance(obj, h5py.Dataset):
            raise FormatError(f"{path}: missing dataset {key!r}; found {sorted(h5.keys())}")
        if obj.ndim == 0:
            raise FormatError(f"{path}: dataset {key!r} is a scalar, not one row per example")
    _check_virtual_sources(h5, path, keys)
    if expected is None:
        expected, source = h5[keys[0]].shape[0], f"dataset {keys[0]!r}"
    else:
        source = "attribute n_examples"
    for key in keys:
        if h5[key].shape[0] != expected:
            raise FormatError(
                f"{path}: dataset {key!r} has {h5[key].shape[0]} rows, expected {int(expected)} ({source})"
            )
    return keys, int(expected)


def _check_virtual_sources(h5: h5py.File, path: str, keys: Sequence[str]) -> None:
    """A virtual dataset (gathered shards, ``core.shards``) reads fill values where a source file is
    missing: refuse to read it instead, naming the file."""
    folder = Path(path).resolve().parent
    for key in keys:
        dset = h5[key]
        if not dset.is_virtual:
            continue
        for source in dset.virtual_sources():
            name = source.file_name
            if name != "." and not (folder / name).is_file():
                raise FormatError(f"{path}: dataset {key!r} reads rows from {name}, which is missing")


def _reader(dset: h5py.Dataset) -> Any:
    """The dataset itself, or its str view when it holds UTF-8 variable-length strings."""
    info = h5py.check_string_dtype(dset.dtype)
    if info is not None and info.length is None and info.encoding == "utf-8":
        return dset.asstr()
    return dset


MAX_OPEN_SHARDS = 256
"""Shard files a reader keeps open at once (per process; the least recently used is closed)."""


def _shard_map(h5: h5py.File, path: str, keys: Sequence[str]) -> tuple[list[Path], np.ndarray] | None:
    """For a table gathered from shards (``core.shards.gather``; at the root or in one group): the shard
    paths and the first row of each (plus the total), else None."""
    groups = {key.rpartition("/")[0] for key in keys}
    group = groups.pop() if len(groups) == 1 else ""
    table = h5[group] if group else h5  # a table in a group keeps its own attributes
    names, rows = table.attrs.get("shards"), table.attrs.get("shard_rows")
    if names is None or rows is None or not all(h5[key].is_virtual for key in keys):
        return None
    folder = Path(path).resolve().parent
    return [folder / name for name in json.loads(names)], np.cumsum([0, *json.loads(rows)])


class H5Examples:
    """Map-style dataset over an HDF5 file: ``ds[i]`` is ``{key: row i}``.

    Metadata is read (and the file closed) in ``__init__``; the data handle is opened on first access and
    reopened whenever the process id changes, so it is safe to create before DataLoader workers fork.
    Numeric rows come back as numpy arrays, variable-length strings as ``str``/``bytes``. A file gathered
    from shards is read from the shard files themselves (at most ``MAX_OPEN_SHARDS`` open): a row of a
    virtual dataset costs a search through all its mappings, 10x slower than this at 200 shards.
    """

    def __init__(self, path: str | os.PathLike[str], keys: Sequence[str] | None = None) -> None:
        self.path = os.fspath(path)
        with h5py.File(self.path, "r") as h5:
            self.keys, self._len = _validate(h5, self.path, keys)
            self._shards = _shard_map(h5, self.path, self.keys)
        if self._shards is not None and self._shards[1][-1] != self._len:
            raise FormatError(
                f"{self.path}: shard_rows add up to {self._shards[1][-1]}, not {self._len} rows"
            )
        self._h5: h5py.File | None = None
        self._readers: dict[str, Any] = {}
        self._open_shards: OrderedDict[int, tuple[h5py.File, dict[str, Any]]] = OrderedDict()
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._len

    def _open(self) -> dict[str, Any]:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._readers = {key: _reader(self._h5[key]) for key in self.keys}
            self._open_shards = OrderedDict()
        return self._readers

    def _shard(self, index: int) -> tuple[dict[str, Any], int]:
        """The readers of the shard holding row ``index``, and the row's index in it."""
        self._open()
        paths, starts = self._shards  # type: ignore[misc]
        shard = int(np.searchsorted(starts, index, side="right")) - 1
        entry = self._open_shards.get(shard)
        if entry is None:
            if len(self._open_shards) >= MAX_OPEN_SHARDS:
                self._open_shards.popitem(last=False)[1][0].close()
            handle = h5py.File(paths[shard], "r")
            entry = handle, {key: _reader(handle[key]) for key in self.keys}
            self._open_shards[shard] = entry
        else:
            self._open_shards.move_to_end(shard)
        return entry[1], index - int(starts[shard])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self._len <= index < self._len:
            raise IndexError(f"{self.path}: index {index} out of range for {self._len} examples")
        index = int(index) % self._len
        readers, row_index = self._shard(index) if self._shards is not None else (self._open(), index)
        out = {}
        for key, dset in readers.items():
            row = dset[row_index]
            out[key] = row if isinstance(row, str | bytes | np.ndarray) else np.asarray(row)
        return out

    def close(self) -> None:
        """Close this process's handles (they reopen on the next access)."""
        if self._pid == os.getpid():
            for handle, _ in self._open_shards.values():
                handle.close()
            if self._h5 is not None:
                self._h5.close()
        self._h5, self._readers, self._pid, self._open_shards = None, {}, None, OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_h5=None, _readers={}, _pid=None, _open_shards=OrderedDict())
        return state


def read_all(path: str | os.PathLike[str], keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Load whole datasets into memory (for small files)."""
    name = os.fspath(path)
    with h5py.File(name, "r") as h5:
        keys, _ = _validate(h5, name, keys)
        return {key: np.asarray(_reader(h5[key])[()]) for key in keys}


def read_rows(
    path: str | os.PathLike[str], rows: Sequence[int] | np.ndarray, keys: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Rows ``rows`` (increasing indices) of each dataset, read without loading the rest."""
    rows = np.asarray(rows, dtype=np.int64)
    name = os.fspath(path)
    if len(rows) and (np.any(np.diff(rows) <= 0) or rows[0] < 0):
        raise ValueError(f"{name}: rows must be increasing non-negative indices")
    with h5py.File(name, "r") as h5:
        keys, n = _validate(h5, name, keys)
        if len(rows) and rows[-1] >= n:
            raise IndexError(f"{name}: row {rows[-1]} out of range for {n} examples")
        return {key: np.asarray(_reader(h5[key])[rows]) for key in keys}


def iter_batches(
    path: str | os.PathLike[str], batch_size: int, keys: Sequence[str] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Stream contiguous slices of ``batch_size`` rows (the last may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    name = os.fspath(path)
    with h5py.File(name, "r") as h5:
        keys, n = _validate(h5, name, keys)
        readers = {key: _reader(h5[key]) for key in keys}
        for start in range(0, n, batch_size):
            yield {key: np.asarray(r[start : start + batch_size]) for key, r in readers.items()}


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's attributes, with the JSON text that :class:`H5Writer` stores for lists and maps decoded."""
    out: dict[str, Any] = {}
    with h5py.File(os.fspath(path), "r") as h5:
        for key, value in h5.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and (value[:1] in "[{" or value == "null"):
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(value)
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def split_indices(path: str | os.PathLike[str], field: str = "split") -> dict[str, np.ndarray]:
    """Row indices per split, for files with a ``split`` code field and a ``splits`` attribute of names."""
    names = read_attrs(path).get("splits")
    if not isinstance(names, list):
        raise FormatError(f"{os.fspath(path)}: no 'splits' attribute listing the split names")
    codes = read_all(path, [field])[field]
    return {name: np.flatnonzero(codes == i) for i, name in enumerate(names)}


def first_rows(
    path: str | os.PathLike[str], split: str, n: int, keys: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The first ``n`` rows of ``split`` (e.g. one training batch for a benchmark)."""
    return read_rows(path, split_indices(path)[split][:n], keys)
