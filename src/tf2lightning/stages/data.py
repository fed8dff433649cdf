"""Data conversion stage: the family's legacy-format records -> HDF5 (no framework).

Families whose ``data`` module has ``shards``/``convert_shard`` (see ``core.shards``) are converted one
shard per job and gathered into ``data.h5``; the others in one job by ``convert``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tf2lightning.core.shards import Shard, gather
from tf2lightning.errors import FormatError
from tf2lightning.families import family_module
from tf2lightning.run import Run

log = logging.getLogger(__name__)


def convert_data(run: Run, legacy_dir: str | Path, out_h5: str | Path) -> None:
    """Convert the dataset in ``legacy_dir`` to ``out_h5`` in one go (written under a temporary name)."""
    family_module(run.family, "data").convert(run, Path(legacy_dir), Path(out_h5))


def dataset_shards(run: Run, legacy_dir: str | Path) -> list[Shard] | None:
    """The dataset's shards, or None when the family converts a dataset only as a whole."""
    data = family_module(run.family, "data")
    if not hasattr(data, "shards"):
        return None
    shards = data.shards(run, Path(legacy_dir))
    names = [shard.name for shard in shards]
    if len(set(names)) != len(names):
        raise FormatError(f"{legacy_dir}: shard names are not unique: {sorted(names)}")
    return shards


def convert_shard(run: Run, legacy_dir: str | Path, name: str, out_h5: str | Path) -> None:
    """Convert the shard called ``name`` to ``out_h5``; a failure leaves nothing and names its files."""
    shards = {shard.name: shard for shard in dataset_shards(run, legacy_dir) or []}
    if name not in shards:
        raise FormatError(f"{legacy_dir}: no shard {name!r}; the dataset has {sorted(shards)[:10]}")
    shard = shards[name]
    try:
        family_module(run.family, "data").convert_shard(run, Path(legacy_dir), shard, Path(out_h5))
    except FormatError as error:
        files = ", ".join(map(str, shard.paths))
        if not any(str(path) in str(error) for path in shard.paths):
            raise FormatError(f"shard {name!r} ({files}): {error}") from error
        raise
    log.info("shard %s: %s -> %s", name, ", ".join(map(str, shard.paths)), out_h5)


def gather_shards(shard_files: Sequence[str | Path], out_h5: str | Path) -> None:
    """``data.h5`` as virtual datasets over the converted shards (``core.shards.gather``)."""
    rows = gather(shard_files, out_h5)
    log.info("gathered %d rows from %d shards into %s", rows, len(shard_files), out_h5)
