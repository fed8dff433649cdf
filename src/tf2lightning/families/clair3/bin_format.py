"""Clair3 training bins: PyTables HDF5 with four EArrays (numpy, PyTables and h5py only).

As upstream's Tensor2Bin/MergeBin write them: ``position_matrix`` (pileup int32 ``(N, 33, 18)`` counts, which
exceed int8; full alignment int8 ``(N, depth, 33, 8)``), ``label`` integer ``(N, 90)``, ``position`` and
``alt_info`` fixed-width byte strings ``(N, 1)``, all with Blosc ``lz4hc`` filters. Files are read with h5py
(hdf5plugin decodes PyTables' Blosc), so no PyTables is needed to read them; string columns are returned
as vectors ``(N,)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter with h5py)
import numpy as np

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError
from tf2lightning.families.clair3.labels import LABEL_WIDTH

ARRAYS = ("position_matrix", "label", "position", "alt_info")
BIN_CHUNK_ROWS = 500
CHUNK_SIZE = 200  # Clair3 param.chunk_size: rows that training reads together from a .bin


def write_bin(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write one ``.bin`` atomically; ``arrays`` holds the four ``ARRAYS`` with one row per site."""
    import tables

    missing = [name for name in ARRAYS if name not in arrays]  # strings are written (N, 1), as upstream
    if missing:
        raise ValueError(f"{path}: cannot write a .bin without {missing}")
    filters = tables.Filters(complevel=5, complib="blosc:lz4hc")
    with atomic_path(path) as tmp, tables.open_file(str(tmp), mode="w") as out:
        for name in ARRAYS:
            values = np.asarray(arrays[name])
            if values.dtype.kind == "S":
                values = values.reshape(-1, 1)
                atom = tables.StringAtom(itemsize=max(values.dtype.itemsize, 1))
            else:
                atom = tables.Atom.from_dtype(values.dtype)
            rows = max(1, min(BIN_CHUNK_ROWS, len(values)))
            earray = out.create_earray(
                out.root, name, atom, shape=(0, *values.shape[1:]), filters=filters,
                chunkshape=(rows, *values.shape[1:]), expectedrows=len(values),
            )  # fmt: skip
            earray.append(values)


def check_bin(h5: h5py.File, where: str, shape: tuple[int, ...] | None = None) -> int:
    """Check the four arrays (integer tensors, row shape, byte strings ``(N,)`` or ``(N, 1)``, one
    length); return the number of sites."""
    for name in ARRAYS:
        if not isinstance(h5.get(name), h5py.Dataset):
            raise FormatError(f"{where}: missing array {name!r}; found {sorted(h5.keys())}")
    n = h5["position_matrix"].shape[0]
    matrix, label = h5["position_matrix"], h5["label"]
    if matrix.dtype.kind != "i":
        raise FormatError(
            f"{where}: array 'position_matrix' has dtype {matrix.dtype}, expected signed integers"
        )
    if shape is not None and matrix.shape[1:] != tuple(shape):
        raise FormatError(
            f"{where}: array 'position_matrix' has rows of shape {matrix.shape[1:]}, expected {tuple(shape)}"
        )
    if label.dtype.kind not in "iuf" or label.shape[1:] != (LABEL_WIDTH,):
        raise FormatError(
            f"{where}: array 'label' must be numeric (N, {LABEL_WIDTH}), found {label.dtype} {label.shape}"
        )
    for name in ("position", "alt_info"):
        if h5[name].dtype.kind != "S" or h5[name].shape[1:] not in ((), (1,)):
            raise FormatError(
                f"{where}: array {name!r} must hold byte strings (N,) or (N, 1), found "
                f"{h5[name].dtype} {h5[name].shape}"
            )
    for name in ARRAYS:
        if h5[name].shape[0] != n:
            raise FormatError(f"{where}: array {name!r} has {h5[name].shape[0]} rows, position_matrix {n}")
    return n


def read_rows(h5: h5py.File, name: str, rows: slice | np.ndarray) -> np.ndarray:
    """Rows of one array; string columns as a vector."""
    values = h5[name][rows]
    return values.reshape(-1) if values.dtype.kind == "S" else values


def read_bin(path: str | os.PathLike[str], shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """All four arrays of a bin (checked as in :func:`check_bin`)."""
    where = os.fspath(path)
    try:
        h5 = h5py.File(where, "r")
    except OSError as error:
        raise FormatError(f"{where}: not a readable Clair3 .bin (HDF5) file: {error}") from None
    with h5:
        n = check_bin(h5, where, shape)
        return {name: read_rows(h5, name, slice(0, n)) for name in ARRAYS}


def chunk_batches(
    n: int, batch_size: int, rng: np.random.Generator, chunk_size: int = CHUNK_SIZE
) -> list[list[slice]]:
    """One training pass over ``n`` rows as Clair3's ``Train.py`` reads a ``.bin``: each batch is
    ``batch_size / chunk`` chunks of ``chunk`` consecutive rows (``chunk`` = ``chunk_size``, the whole
    batch when it is smaller, else the largest divisor of the batch size that divides ``chunk_size``),
    the chunks in shuffled order, all shifted by one random start offset below ``chunk``; only full
    batches."""
    chunk = batch_size if batch_size < chunk_size else math.gcd(batch_size, chunk_size)
    n_chunks = max((n - chunk) // chunk, 0)
    per_batch = batch_size // chunk
    order, start = rng.permutation(n_chunks), int(rng.integers(0, chunk))
    return [
        [
            slice(start + i * chunk, start + (i + 1) * chunk)
            for i in order[b * per_batch : (b + 1) * per_batch]
        ]
        for b in range(n_chunks // per_batch)
    ]
