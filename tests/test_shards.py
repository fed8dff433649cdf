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
from tf2lightning.run import Run
from tf2lightning.stages.data import convert_shard, dataset_shards, gather_shards


def sharded(legacy: Path, out: Path, run: Run = RUN) -> Path:
    """What the workflow does: every shard in its own call, then the gather."""
    files = []
    for shard in dataset_shards(run, legacy) or []:
        files.append(out.parent / "shards" / f"{shard.name}.h5")
        convert_shard(run, legacy, shard.name, files[-1])
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


CLAIR3 = Run(
    "clair3",
    "ont",
    "P",
    {"depth": 89, "split": {"val": [], "test": ["chr2"]}},
    {"network": "P"},
    {"batch_size": 8},
)
CLAIR3_GROUPS = ("pileup", "full_alignment")


def clair3_bins(dest: Path) -> Path:
    """A copy of upstream's ONT bins (the fixture): pileup/ and full_alignment/, two chromosomes each."""
    import shutil

    from tests.upstream_fixtures import upstream_dir

    shutil.copytree(upstream_dir("clair3", "bins", "ont"), dest)
    return dest


def test_clair3_shards_gather_to_the_one_job_conversion_and_upstream_bins(tmp_path: Path) -> None:
    from tests.upstream_fixtures import upstream_dir
    from tf2lightning.families.clair3 import data

    legacy = clair3_bins(tmp_path / "bins")
    data.convert(CLAIR3, legacy, tmp_path / "whole.h5")
    gathered = sharded(legacy, tmp_path / "out" / "data.h5", CLAIR3)
    names = [f"{kind}__bin_hg002_60_{chrom}" for kind in CLAIR3_GROUPS for chrom in ("chr1", "chr2")]
    assert [(s.name, s.split) for s in dataset_shards(CLAIR3, legacy)] == list(
        zip(names, ["train", "test"] * 2, strict=True)
    )
    expected, found = {}, {}
    with h5py.File(tmp_path / "whole.h5") as whole, h5py.File(gathered) as h5:
        for kind in CLAIR3_GROUPS:
            assert sorted(h5[kind]) == sorted(whole[kind]) == sorted((*data.ARRAY_FIELDS, "file", "split"))
            assert h5[kind].attrs["n_examples"] == whole[kind].attrs["n_examples"] > 0
            for name in h5[kind]:
                assert h5[kind][name].is_virtual and not whole[kind][name].is_virtual
                key = f"{kind}/{name}"
                expected[key], found[key] = whole[key][()], h5[key][()]
        assert dict(h5.attrs) == dict(whole.attrs)  # platform, depth, heads, splits, split, source
    for key, values in expected.items():
        np.testing.assert_array_equal(found[key], values)

    upstream = np.load(upstream_dir("clair3", "bins", "expected.npz"))  # the bins' arrays, as upstream wrote
    for kind in CLAIR3_GROUPS:
        for chrom in ("chr1", "chr2"):
            rows = found[f"{kind}/file"] == f"bin_hg002_60_{chrom}".encode()
            assert np.all(found[f"{kind}/split"][rows] == (2 if chrom == "chr2" else 0))
            for array in data.ARRAY_FIELDS:
                want = upstream[f"ont/{kind}/bin_hg002_60_{chrom}/{array}"]
                np.testing.assert_array_equal(found[f"{kind}/{array}"][rows].reshape(want.shape), want)

    datamodule = data.make_datamodule(CLAIR3, gathered)  # the DataModule reads it unchanged
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["x"].shape == (8, 33, 18) and batch["y"].shape == (8, 4)


def test_a_bad_clair3_bin_fails_its_shard_alone_and_leaves_nothing(tmp_path: Path) -> None:
    legacy = clair3_bins(tmp_path / "bins")
    bad = legacy / "full_alignment" / "bin_hg002_60_chr2"
    bad.write_bytes(bad.read_bytes()[:4096])  # truncated
    out = tmp_path / "shards"
    convert_shard(CLAIR3, legacy, "full_alignment__bin_hg002_60_chr1", out / "good.h5")
    with pytest.raises(FormatError, match=r"full_alignment/bin_hg002_60_chr2"):
        convert_shard(CLAIR3, legacy, "full_alignment__bin_hg002_60_chr2", out / "bad.h5")
    assert sorted(p.name for p in out.iterdir()) == ["good.h5"]  # no partial or temporary file


def test_gather_keeps_each_group_a_table_of_its_own(tmp_path: Path) -> None:
    def shard(name: str, group: str, rows: int) -> Path:
        fields = {f"{group}x": Field(np.int16, (2,)), f"{group}y": Field(np.int16, ())}
        with H5Writer(tmp_path / name, fields, {"k": 1}) as out:
            out.append({f"{group}x": np.full((rows, 2), rows), f"{group}y": np.arange(rows)})
        return tmp_path / name

    a1, b, a2 = shard("a1.h5", "a/", 3), shard("b.h5", "b/", 5), shard("a2.h5", "a/", 2)
    assert gather([a1, b, a2], tmp_path / "data.h5") == 10
    tables = read_all(tmp_path / "data.h5", ["a/x", "a/y", "b/y"])
    assert tables["a/y"].tolist() == [0, 1, 2, 0, 1] and tables["b/y"].tolist() == [0, 1, 2, 3, 4]
    assert read_attrs(tmp_path / "data.h5") == {"k": 1, "format_version": read_attrs(a1)["format_version"]}
    with h5py.File(tmp_path / "data.h5") as h5:  # each table's own counts and shards
        assert [h5[g].attrs["n_examples"] for g in ("a", "b")] == [5, 5]
        assert h5["a"].attrs["shards"] == '["a1.h5", "a2.h5"]' and h5["a"].attrs["shard_rows"] == "[3, 2]"
    group_a = H5Examples(tmp_path / "data.h5", ["a/x", "a/y"])  # read from a1.h5, a2.h5, not the VDS
    assert [group_a[i]["a/y"] for i in range(5)] == [0, 1, 2, 0, 1] and group_a._shards is not None
    assert [p.name for p in group_a._shards[0]] == ["a1.h5", "a2.h5"]
    root = shard("root.h5", "", 4)
    with pytest.raises(FormatError, match=r"a1\.h5: rows in a group, but .*root\.h5 has them at the root"):
        gather([a1, root], tmp_path / "mixed.h5")


def clair3_config(path: Path, legacy: Path) -> Path:
    dataset = {
        "legacy_data": str(legacy),
        "platform": "ont",
        "depth": 89,
        "split": {"val": [], "test": ["chr2"]},
    }
    path.write_text(yaml.safe_dump({"families": {"clair3": {"datasets": {"mine": dataset}}}}))
    return path


def test_clair3_workflow_reconverts_only_the_changed_bin(tmp_path: Path) -> None:
    from tests.test_workflow import planned_jobs
    from tests.workflow_runner import copy_workflow, snakemake
    from tf2lightning.families.clair3.bin_format import read_bin, write_bin

    workdir = copy_workflow(tmp_path / "workflow")
    legacy = clair3_bins(tmp_path / "bins")
    config = clair3_config(tmp_path / "mine.yaml", legacy)
    target = "results/clair3/mine/data.h5"
    run = snakemake(workdir, "-c1", target, "--configfile", config)
    assert planned_jobs(run.stdout + run.stderr) == {"convert_shard": 4, "convert_data": 1}
    shards = workdir / "results/clair3/mine/shards"
    before = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    n_full = len(read_all(workdir / target, ["full_alignment/label"])["full_alignment/label"])

    changed = legacy / "pileup" / "bin_hg002_60_chr1"
    arrays = read_bin(changed)
    write_bin(changed, {key: values[:7] for key, values in arrays.items()})  # in place: 7 of its sites
    run = snakemake(workdir, "-c1", target, "--configfile", config)
    assert planned_jobs(run.stdout + run.stderr) == {"convert_shard": 1, "convert_data": 1}
    after = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    assert [name for name in before if after[name] != before[name]] == ["pileup__bin_hg002_60_chr1.h5"]
    tables = read_all(workdir / target, ["pileup/position", "pileup/file"])
    rows = tables["pileup/file"] == b"bin_hg002_60_chr1"
    assert (
        rows.sum() == 7
        and len(read_all(workdir / target, ["full_alignment/label"])["full_alignment/label"]) == n_full
    )
    np.testing.assert_array_equal(tables["pileup/position"][rows], arrays["position"][:7].reshape(-1))


def test_dry_run_plans_one_job_per_clair3_bin(tmp_path: Path) -> None:
    """A 200-file Clair3 dataset (100 bins per network): 200 shard jobs and one gather."""
    from tests.test_workflow import planned_jobs
    from tests.workflow_runner import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "workflow")
    for kind in CLAIR3_GROUPS:
        (tmp_path / "bins" / kind).mkdir(parents=True)
        for i in range(100):
            (tmp_path / "bins" / kind / f"bin_hg002_60_chr{i}").touch()
    config = clair3_config(tmp_path / "big.yaml", tmp_path / "bins")
    proc = snakemake(workdir, "-n", "results/clair3/mine/data.h5", "--configfile", config)
    assert planned_jobs(proc.stdout) == {"convert_shard": 200, "convert_data": 1}
