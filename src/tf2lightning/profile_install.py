"""Install a workflow profile as a named Snakemake profile, so ``snakemake --profile slurm all`` finds it.

Snakemake looks a profile name up in the current directory, then in the user's configuration directory
(``~/.config/snakemake`` on Linux; Snakemake's own ``get_appdirs`` says where), then the site's. This copies
``profiles/<name>`` there, with a marker file holding the checksum of what was copied. A profile of that
name that we did not install, or that was edited since, is never overwritten: the install stops and says
so. Reinstalling our own unedited copy refreshes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import Tf2LightningError

__all__ = ["MARKER", "ProfileExistsError", "install_profile", "user_profile_dir"]

MARKER = ".tf2lightning-profile.json"


class ProfileExistsError(Tf2LightningError):
    """The target profile directory holds a profile that is not our unedited copy."""


def user_profile_dir() -> Path:
    """Where Snakemake looks up a profile name for this user (honours ``XDG_CONFIG_HOME``)."""
    try:
        from snakemake.cli import get_appdirs
    except ImportError:  # without Snakemake: the same rule as platformdirs on Linux
        base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
        return Path(base) / "snakemake"
    return Path(get_appdirs().user_config_dir)


def _digest(directory: Path) -> str:
    """A checksum over the profile's files (names and contents), the marker excluded."""
    sha = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MARKER):
        sha.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


def install_profile(
    source: str | os.PathLike[str], name: str | None = None, dest_root: Path | None = None
) -> Path:
    """Copy the profile directory ``source`` to ``<user config>/snakemake/<name>``; return the new path.

    Raises :class:`ProfileExistsError` when that directory exists and is not our unedited copy.
    """
    source = Path(source).resolve()
    if not (source / "config.yaml").is_file():
        raise Tf2LightningError(f"{source}: not a Snakemake profile (no config.yaml)")
    target = (dest_root or user_profile_dir()) / (name or source.name)
    if target.exists():
        marker = target / MARKER
        ours = marker.is_file() and json.loads(marker.read_text()).get("sha256") == _digest(target)
        if not ours:
            raise ProfileExistsError(
                f"{target}: a profile of this name exists (not installed by tf2lightning, or edited since); "
                f"left untouched. Use `--profile {source}`, or install ours under another name with "
                f"`--name <other>` and run `snakemake --profile <other> all`."
            )
    with atomic_path(target, directory=True) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MARKER))
        (tmp / MARKER).write_text(json.dumps({"source": str(source), "sha256": _digest(tmp)}) + "\n")
    return target
