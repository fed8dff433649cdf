"""``tf2lightning install-profile``: a named Snakemake profile that never overwrites the user's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf2lightning.cli import main
from tf2lightning.profile_install import ProfileExistsError, install_profile, user_profile_dir

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "profiles" / "slurm"


def test_installs_where_snakemake_looks_up_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert user_profile_dir() == tmp_path / "snakemake"
    assert main(["install-profile", str(SLURM)]) == 0
    installed = tmp_path / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == (SLURM / "config.yaml").read_text()
    assert main(["install-profile", str(SLURM)]) == 0  # our unedited copy is refreshed


def test_never_overwrites_a_profile_of_the_user(tmp_path: Path) -> None:
    theirs = tmp_path / "slurm"
    theirs.mkdir()
    (theirs / "config.yaml").write_text("executor: slurm\n")
    with pytest.raises(ProfileExistsError, match=str(theirs)):
        install_profile(SLURM, dest_root=tmp_path)
    assert (theirs / "config.yaml").read_text() == "executor: slurm\n"
    assert install_profile(SLURM, "tf2l-slurm", dest_root=tmp_path) == tmp_path / "tf2l-slurm"


def test_an_edited_copy_is_kept(tmp_path: Path) -> None:
    target = install_profile(SLURM, dest_root=tmp_path)
    edited = (target / "config.yaml").read_text() + "slurm-qos: high\n"
    (target / "config.yaml").write_text(edited)
    with pytest.raises(ProfileExistsError, match="edited since"):
        install_profile(SLURM, dest_root=tmp_path)
    assert (target / "config.yaml").read_text() == edited
