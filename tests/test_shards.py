"""Sharded conversion: one HDF5 per input file, gathered into one virtual ``data.h5`` that holds exactly
the records of its inputs, read unchanged by the DataModule; bad shards fail alone, naming their file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.test_dga_data import RUN, write_legacy
from tf2lightning.core.hdf5_store import Field, H5Examples, H5Writer, read_all, read_attrs
from tf2lightning.core.shards import gather
from tf2lightning.errors import FormatError
from tf2lightning.families.dga.data import convert, make_datamodule
from tf2lightning.stages.data import convert_shard, dataset_shards, gather_shards


def sharded(legacy: Path, out: Path) -> Path:
    """What the workflow does: every shard in its own call, then the gather."""
    files = []
    for shard in dataset_shards(RUN, legacy):
        files.append(out.parent / "shards" / f"{shard.name}.h5")
        convert_shard(RUN, legacy, shard.name, files[-1])
    gather_shards(files, out)
    return out


def test_gathered_dataset_equals_one_job_conversion(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    write_legacy(legacy, {"train": 40, "val": 7, "test": 9})
    for i in range(3):  # a split in several files: train-0000.tfrecord, ...
        extra = write_legacy(tmp_path / f"part{i}", {"train": 5 + i, "val": 1, "test": 1})
        (tmp_path / f"part{i}" / "train.tfrecord").rename(legacy / f"train-{i:04d}.tfrecord")
        assert len(extra["train"][0]) == 5 + i
    whole = tmp_path / "whole" / "data.h5"
    convert(RUN, legacy, whole)
    gathered = sharded(legacy, tmp_path / "out" / "data.h5")

    assert [s.name for s in dataset_shards(RUN, legacy)][:4] == [
        "train.tfrecord",
        "train-0000.tfrecord",
        "train-0001.tfrecord",
        "train-0002.tfrecord",
    ]
    expected, found = read_all(whole), read_all(gathered)
    assert found.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(found[key], expected[key])
    attrs = read_attrs(gathered)
    assert attrs["n_examples"] == 40 + 18 + 7 + 9 == sum(attrs["shard_rows"])
    assert attrs["skipped_records"] == 0 and attrs["classes"] == read_attrs(whole)["classes"]
    with h5py.File(gathered) as h5:
        assert all(h5[key].is_virtual for key in expected)

    # the DataModule reads it unchanged, from any working directory
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        datamodule = make_datamodule(RUN, gathered.relative_to(tmp_path))
        datamodule.setup("fit")
        assert next(iter(datamodule.train_dataloader()))["tokens"].shape == (8, 16)
    finally:
        os.chdir(cwd)


def test_a_missing_shard_is_an_error_not_zeros(tmp_path: Path) -> None:
    write_legacy(tmp_path / "legacy", {"train": 6, "val": 2, "test": 2})
    gathered = sharded(tmp_path / "legacy", tmp_path / "out" / "data.h5")
    (tmp_path / "out" / "shards" / "val.tfrecord.h5").unlink()
    with pytest.raises(FormatError, match=r"shards/val\.tfrecord\.h5, which is missing"):
        H5Examples(gathered)
    with pytest.raises(FormatError, match="which is missing"):
        read_all(gathered)


def test_a_bad_file_fails_its_shard_alone_and_leaves_nothing(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    write_legacy(legacy, {"train": 6, "val": 2, "test": 2})
    raw = bytearray((legacy / "val.tfrecord").read_bytes())
    (legacy / "val.tfrecord").write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    out = tmp_path / "shards"
    convert_shard(RUN, legacy, "train.tfrecord", out / "train.h5")
    with pytest.raises(FormatError, match=r"val\.tfrecord"):
        convert_shard(RUN, legacy, "val.tfrecord", out / "val.h5")
    assert sorted(p.name for p in out.iterdir()) == ["train.h5"]  # no partial or temporary file
    with pytest.raises(FormatError, match="no shard 'nope'"):
        convert_shard(RUN, legacy, "nope", out / "nope.h5")


def test_gather_refuses_shards_that_do_not_fit(tmp_path: Path) -> None:
    def shard(name: str, width: int, attrs: dict) -> Path:
        with H5Writer(tmp_path / name, {"x": Field(np.float32, (width,))}, attrs) as out:
            out.append({"x": np.ones((3, width), np.float32)})
        return tmp_path / name

    a, b = shard("a.h5", 4, {"k": 1}), shard("b.h5", 5, {"k": 1})
    with pytest.raises(FormatError, match=r"b\.h5: field 'x' has rows of shape \(5,\)"):
        gather([a, b], tmp_path / "data.h5")
    c = shard("c.h5", 4, {"k": 2})
    with pytest.raises(FormatError, match=r"c\.h5: attribute 'k' is 2"):
        gather([a, c], tmp_path / "data.h5")
    assert not (tmp_path / "data.h5").exists()
    assert gather([a, a], tmp_path / "data.h5") == 6


def test_epibert_shards_gather_to_the_one_job_conversion(tmp_path: Path) -> None:
    from benchmarks.convert_throughput import EPIBERT, epibert_records, write_epibert
    from tf2lightning.families.epibert import data

    legacy = tmp_path / "legacy"
    write_epibert(legacy, 5, 3, epibert_records(7))  # train 3 files, val 1, test 1
    data.convert(EPIBERT, legacy, tmp_path / "whole.h5")
    shards = dataset_shards(EPIBERT, legacy)
    assert shards is not None and [s.split for s in shards] == ["train"] * 3 + ["val", "test"]
    files = [tmp_path / "shards" / f"{shard.name}.h5" for shard in shards]
    for shard, out in zip(shards, files, strict=True):
        convert_shard(EPIBERT, legacy, shard.name, out)
    gather_shards(files, tmp_path / "data.h5")
    expected, found = read_all(tmp_path / "whole.h5"), read_all(tmp_path / "data.h5")
    assert found.keys() == expected.keys() and len(found["split"]) == 15 and "rna" in found
    for key in expected:
        np.testing.assert_array_equal(found[key], expected[key])


def test_workflow_reconverts_only_the_changed_file(tmp_path: Path) -> None:
    from tests.test_workflow import planned_jobs
    from tests.workflow_runner import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "workflow")
    legacy = tmp_path / "legacy"
    write_legacy(legacy, {"train": 30, "val": 6, "test": 5})
    config = tmp_path / "mine.yaml"
    domains = {"legacy_data": str(legacy), "max_len": 16}
    config.write_text(yaml.safe_dump({"families": {"dga": {"datasets": {"domains": domains}}}}))
    target = "results/dga/domains/data.h5"
    run = snakemake(workdir, "-c1", target, "--configfile", config)
    first = planned_jobs(run.stdout + run.stderr)
    assert first == {"convert_shard": 3, "convert_data": 1}
    shards = workdir / "results/dga/domains/shards"
    before = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    assert len(read_all(workdir / target)["label"]) == 41

    replacement = write_legacy(tmp_path / "other", {"train": 1, "val": 9, "test": 1})
    (legacy / "val.tfrecord").write_bytes((tmp_path / "other" / "val.tfrecord").read_bytes())  # in place
    run = snakemake(workdir, "-c1", target, "--configfile", config)
    again = planned_jobs(run.stdout + run.stderr)
    assert again == {"convert_shard": 1, "convert_data": 1}
    after = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    assert [name for name in before if after[name] != before[name]] == ["val.tfrecord.h5"]
    data = read_all(workdir / target)
    val = data["split"] == 1
    assert len(data["label"]) == 44 and list(data["domain"][val]) == replacement["val"][0]


def test_random_rows_of_a_gathered_file_come_from_the_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    from tf2lightning.core import hdf5_store

    rng = np.random.default_rng(0)
    fields = {"x": Field(np.float32, (3,)), "name": Field(str), "code": Field("S5")}
    files, rows = [], []
    for i in range(7):
        part = {
            "x": rng.standard_normal((i + 1, 3)).astype(np.float32),
            "name": [f"r{i}_{j}" for j in range(i + 1)],
            "code": np.array([b"c" * (1 + j % 5) for j in range(i + 1)], dtype="S5"),
        }
        with H5Writer(tmp_path / f"s{i}.h5", fields) as out:
            out.append(part)
        files.append(tmp_path / f"s{i}.h5")
        rows += [{k: part[k][j] for k in part} for j in range(i + 1)]
    gather(files, tmp_path / "data.h5")
    monkeypatch.setattr(hdf5_store, "MAX_OPEN_SHARDS", 2)  # evictions on the way
    examples = H5Examples(tmp_path / "data.h5")
    for dataset in (examples, pickle.loads(pickle.dumps(examples))):
        for index in rng.permutation(len(rows)):
            row = dataset[int(index)]
            np.testing.assert_array_equal(row["x"], rows[index]["x"])
            assert row["name"] == rows[index]["name"] and row["code"] == rows[index]["code"]
        assert len(dataset._open_shards) == 2
        dataset.close()
