"""Converter throughput on many-file corpora: MB/s per core and in total, beside raw decode and tf.data.

    .venv/bin/python benchmarks/convert_throughput.py --gb 1 --workers 2 --out results/convert_throughput.tsv

Writes a synthetic EpiBERT-like corpus (ZLIB TFRecords, ``<split>/K562-<i>.tfr``, upstream's record
layout, made without TensorFlow) and a Clair3-like one (upstream's ``pileup/`` and ``full_alignment/``
folders of ``bin_<sample>_<coverage>_<chrom>`` files, PyTables/Blosc as Tensor2Bin writes them), each of
at least ``--gb`` GB on disk, into ``--scratch``. Then, per family, times on this machine:

- ``convert``: EpiBERT: the workflow's shard jobs (``stages.data.convert_shard``, one per input file)
  run by ``--workers`` processes, then the gather; Clair3 (converted in one job per folder): one job per
  worker on a folder of its own; MB/s of input in total and per core (total / workers);
- ``convert, 1 process``: the same conversion of two files in one process (per-core rate);
- raw decode in one process: for TFRecords the framing with both CRCs and zlib (``iter_records``), and
  that plus a protobuf parse of every ``tf.train.Example`` (the C++ ``google.protobuf`` runtime); for
  ``.bin`` files, reading every array (HDF5 + Blosc decompression);
- ``tf.data`` in one process (a TensorFlow child, never this process): ``TFRecordDataset`` + EpiBERT's
  upstream parser, or Clair3's ``.bin`` reader (``legacy.bin_dataset``) over the training files.

Single-process rows are the fastest of three runs. Records are drawn once and repeated across files,
and the training files of a corpus are copies of its first (the converters do not care), so writing a
GB takes seconds rather than an hour. Rows are printed as a Markdown table and written to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tf2lightning.core import fast_proto
from tf2lightning.core.hdf5_store import read_attrs
from tf2lightning.core.tfrecord import encode_example, encode_tensor, iter_records, write_records
from tf2lightning.core.tsv import write_tsv
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.families.epibert.synthetic import generate
from tf2lightning.run import Run
from tf2lightning.stages.data import convert_shard, dataset_shards, gather_shards

SPLITS = ("train", "val", "test")
EPIBERT = Run(
    "epibert",
    "K562",
    "",
    dataset={
        "input_length": 4096,
        "output_res": 32,
        "atac_bin": 4,
        "max_shift": 4,
        "crop": 2,
        "mask_size": 128,
        "atac_mask_dropout": 0.15,
        "n_motifs": 16,
    },
)
CLAIR3 = Run("clair3", "ont", "F", dataset={"platform": "ont", "depth": 89}, arch={"network": "F"})


def epibert_records(n: int, seed: int = 0) -> list[bytes]:
    """``n`` upstream-layout ``tf.train.Example`` records (sequence, float16/int32 tensors, rna)."""
    out = []
    for example in generate(np.random.default_rng(seed), geometry(EPIBERT), "K562", n, "train"):
        tensors = example.tensors()
        features = {name: [encode_tensor(value)] for name, value in tensors.items()}
        out.append(encode_example({**features, "sequence": example.sequence, "interval": example.interval}))
    return out


def write_epibert(
    root: Path, n_files: int, per_file: int, records: list[bytes], replicate: bool = False
) -> None:
    """``n_files`` ZLIB TFRecords of ``per_file`` records each, spread over the splits (train first);
    ``replicate``: training files after the first are copies of it (a GB is written in seconds)."""
    for i in range(n_files):
        split = SPLITS[0] if i < max(n_files - 2, 1) else SPLITS[1 + (i % 2)]
        path = root / split / f"K562-{i:04d}.tfr"
        path.parent.mkdir(parents=True, exist_ok=True)
        if replicate and split == SPLITS[0] and i:
            shutil.copyfile(root / split / "K562-0000.tfr", path)
            continue
        chosen = (records[(i * per_file + j) % len(records)] for j in range(per_file))
        write_records(path, chosen, "ZLIB")


def clair3_sites(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` synthetic ONT candidate sites (depth 89): pileup and full-alignment tensors, labels."""
    from tf2lightning.families.clair3.platform import Platform
    from tf2lightning.families.clair3.synthetic import generate_sites

    return generate_sites(n, Platform("ont", 89), np.random.default_rng(seed))


def write_clair3(
    root: Path, n_files: int, per_file: int, sites: dict[str, np.ndarray], replicate: bool = False
) -> list[Path]:
    """Upstream's layout: ``pileup/`` and ``full_alignment/`` folders of ``bin_<sample>_<coverage>_<chrom>``
    files, ``per_file`` sites each; the last two files are chr20 and chr21 (validation and test by
    default), the others training chromosomes (``replicate``: copies of the first). Returns the
    full-alignment files."""
    from tf2lightning.families.clair3.bin_format import write_bin

    n, out = len(sites["label"]), []
    for i in range(n_files):
        chrom = {n_files - 2: "chr20", n_files - 1: "chr21"}.get(i, f"chrT{i:04d}")
        rows = np.arange(i * per_file, (i + 1) * per_file) % n
        shared = {k: sites[k][rows] for k in ("label", "position", "alt_info")}
        for kind in ("pileup", "full_alignment"):
            path = root / kind / f"bin_bench_60_{chrom}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if replicate and 0 < i < n_files - 2:
                shutil.copyfile(root / kind / "bin_bench_60_chrT0000", path)
            else:
                write_bin(path, {"position_matrix": sites[kind][rows], **shared})
        out.append(root / "full_alignment" / f"bin_bench_60_{chrom}")
    return out


def _size(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def _one_shard(job: tuple[Run, str, str, str]) -> None:
    run, legacy, name, out = job
    os.environ["OMP_NUM_THREADS"] = "1"
    convert_shard(run, legacy, name, out)


def convert_rate(run: Run, legacy: Path, work: Path, workers: int) -> tuple[float, int]:
    """Seconds to convert every shard with ``workers`` processes and gather them; the row count."""
    shards = dataset_shards(run, legacy) or []
    outs = [work / "shards" / f"{shard.name}.h5" for shard in shards]
    jobs = [(run, str(legacy), shard.name, str(out)) for shard, out in zip(shards, outs, strict=True)]
    start = time.perf_counter()
    if workers == 1:
        for job in jobs:
            _one_shard(job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_one_shard, jobs))
    gather_shards(outs, work / "data.h5")
    seconds = time.perf_counter() - start
    return seconds, int(read_attrs(work / "data.h5")["n_examples"])


def timed(fn: Callable[[], int], repeats: int = 3) -> tuple[float, int]:
    """The fastest of ``repeats`` runs of ``fn`` (seconds) and the items it reports."""
    best, items = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        items = fn()
        best = min(best, time.perf_counter() - start)
    return best, items


TF_EPIBERT = """
import json, sys, time
import tensorflow as tf
from tf2lightning.families.epibert import tfdata
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.run import Run
run, files = Run(**json.loads(sys.argv[1])), sys.argv[2:]
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
geo = geometry(run)
ds = tf.data.TFRecordDataset(files, compression_type="ZLIB").map(lambda r: tfdata.parse(r, geo, rna=True))
best = float("inf")
for _ in range(3):  # the fastest of three passes
    start, n = time.perf_counter(), 0
    for _ in ds:
        n += 1
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "items": n}))
"""

TF_CLAIR3 = """
import json, sys, time
import tensorflow as tf
from tf2lightning.families.clair3 import legacy
from tf2lightning.run import Run
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
run, root, files = Run(**json.loads(sys.argv[1])), sys.argv[2], sys.argv[3:]
best = float("inf")
for _ in range(3):  # the fastest of three passes
    start, n = time.perf_counter(), 0
    for split in ("train", "val", "test"):
        for x, _ in legacy.bin_dataset(run, root, split, 200, 0):
            n += len(x)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "items": n}))
"""


def tf_child(script: str, run: Run, *args: str) -> tuple[float, int]:
    """Run ``script`` in a TensorFlow child process (this process never imports TensorFlow)."""
    payload = json.dumps(dataclasses.asdict(run))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script, payload, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise RuntimeError(f"tf.data child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["items"])


def row(family: str, what: str, megabytes: float, seconds: float, items: int, workers: int = 1) -> dict:
    return {
        "family": family,
        "reader": what,
        "processes": workers,
        "input_mb": round(megabytes, 1),
        "seconds": round(seconds, 2),
        "mb_per_s": round(megabytes / seconds, 2),
        "mb_per_s_per_core": round(megabytes / seconds / workers, 2),
        "records_per_s": round(items / seconds, 1),
    }


def bench_epibert(root: Path, work: Path, gb: float, workers: int, per_file: int) -> list[dict]:
    records = epibert_records(256)
    per_record = sum(len(r) for r in records) / len(records)
    # ZLIB shrinks these records about 4x; size the corpus by a trial file
    write_epibert(root / "trial", 1, per_file, records)
    on_disk = _size(list((root / "trial").rglob("*.tfr"))) / per_file
    n_files = max(3, int(np.ceil(gb * 1e3 / (on_disk * per_file))))
    write_epibert(root / "corpus", n_files, per_file, records, replicate=True)
    files = sorted((root / "corpus").rglob("*.tfr"))
    mb = _size(files)
    print(
        f"epibert: {n_files} files, {mb:.0f} MB on disk ({per_record / 1e3:.1f} kB per record raw)",
        flush=True,
    )
    rows = [
        row(
            "epibert",
            "convert (shard jobs + gather)",
            mb,
            *convert_rate(EPIBERT, root / "corpus", work / "e", workers),
            workers,
        )
    ]
    one = sorted((root / "corpus" / "train").glob("*.tfr"))[:2]
    mb_one = _size(one)
    rows.append(
        row(
            "epibert",
            "convert, 1 process",
            mb_one,
            *timed(lambda: convert_files(EPIBERT, root / "corpus", work / "e1", one)),
        )
    )
    rows.append(
        row(
            "epibert",
            "raw: framing + CRC + zlib",
            mb_one,
            *timed(lambda: sum(1 for f in one for _ in iter_records(f))),
        )
    )
    parse = fast_proto.example_parser()
    rows.append(
        row(
            "epibert",
            "raw: + protobuf parse (C++)",
            mb_one,
            *timed(lambda: sum(1 for f in one for r in iter_records(f) if parse(r))),
        )
    )
    rows.append(
        row(
            "epibert",
            "tf.data: TFRecordDataset + upstream parse",
            mb_one,
            *tf_child(TF_EPIBERT, EPIBERT, *map(str, one)),
        )
    )
    return rows


def convert_files(run: Run, legacy: Path, work: Path, files: list[Path]) -> int:
    """Convert the shards of ``files`` alone, in this process; returns their row count."""
    wanted = {f.resolve() for f in files}
    rows = 0
    for shard in dataset_shards(run, legacy) or []:
        if {p.resolve() for p in shard.paths} & wanted:
            out = work / f"{shard.name}.h5"
            out.unlink(missing_ok=True)
            convert_shard(run, legacy, shard.name, out)
            rows += int(read_attrs(out)["n_examples"])
    return rows


def convert_folder(run: Run, legacy: Path, out: Path) -> int:
    """The family's one-job conversion of a folder; returns the rows written (every ``split`` column)."""
    import h5py

    from tf2lightning.families import family_module

    family_module(run.family, "data").convert(run, legacy, out)
    rows: list[int] = []
    with h5py.File(out, "r") as h5:
        h5.visititems(lambda name, obj: rows.append(len(obj)) if name.split("/")[-1] == "split" else None)
    return sum(rows)


def bench_clair3(root: Path, work: Path, gb: float, workers: int, per_file: int) -> list[dict]:
    """Per-core rates on one folder of three bin pairs, and the whole corpus: by shard jobs where the
    family converts by shards, else as ``workers`` one-job conversions of disjoint folders."""
    from tf2lightning.families.clair3.bin_format import read_bin

    sites = clair3_sites(512)
    write_clair3(root / "trial", 3, per_file, sites)
    per_pair = _size(list((root / "trial").rglob("bin_*"))) / 3
    pairs = max(3 * workers, int(np.ceil(gb * 1e3 / per_pair)))
    folders = [root / "corpus" / f"part{w}" for w in range(workers)]
    for w, folder in enumerate(folders):
        write_clair3(folder, pairs // workers + (w < pairs % workers), per_file, sites, replicate=True)
    mb = _size(list((root / "corpus").rglob("bin_*")))
    print(f"clair3: {pairs} .bin pairs in {workers} folders, {mb:.0f} MB on disk", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        counts = list(
            pool.map(convert_folder, [CLAIR3] * workers, folders, [work / f"c{w}.h5" for w in range(workers)])
        )
    rows = [
        row("clair3", "convert (one job per folder)", mb, time.perf_counter() - start, sum(counts), workers)
    ]
    trial_mb = _size(list((root / "trial").rglob("bin_*")))
    rows.append(
        row(
            "clair3",
            "convert, 1 process",
            trial_mb,
            *timed(lambda: convert_folder(CLAIR3, root / "trial", work / "c1.h5")),
        )
    )
    files = sorted((root / "trial").rglob("bin_*"))
    rows.append(
        row(
            "clair3",
            "raw: HDF5 + Blosc decode of every array",
            trial_mb,
            *timed(lambda: sum(len(read_bin(f)["label"]) for f in files)),
        )
    )
    fa = sorted((root / "trial" / "full_alignment").glob("bin_*"))
    try:
        seconds, items = tf_child(TF_CLAIR3, CLAIR3, str(root / "trial"), *map(str, fa))
        rows.append(
            row(
                "clair3",
                "Clair3 .bin reader (tf.data generator, F)",
                _size(fa) * items / (per_file * len(fa)),
                seconds,
                items,
            )
        )
    except RuntimeError as error:
        print(f"clair3 .bin reader: {str(error).splitlines()[-1]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of each corpus on disk")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--per-file", type=int, default=2000, help="records (sites) per input file")
    parser.add_argument("--family", choices=("epibert", "clair3", "both"), default="both")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where the corpora go (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        root = Path(tmp)
        rows = []
        if args.family in ("epibert", "both"):
            rows += bench_epibert(root / "epibert", root / "out", args.gb, args.workers, args.per_file)
        if args.family in ("clair3", "both"):
            rows += bench_clair3(root / "clair3", root / "out", args.gb, args.workers, args.per_file)
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in columns) + " |")
    if args.out:
        write_tsv(args.out, rows, columns)


if __name__ == "__main__":
    main()
