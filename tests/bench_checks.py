"""One check for a TF family's training and data benchmarks, run through the real child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf2lightning.bench.suite import Settings, bench_data, bench_training
from tf2lightning.core.tsv import read_tsv
from tf2lightning.run import Run


def check_training_and_data_benchmarks(
    run: Run,
    paths: dict[str, Path],
    out_dir: Path,
    batch_size: int,
    train_rows: int,
    views_expected: tuple[str, ...] = (),
) -> None:
    """Training: the Keras step is the baseline, the plain torch loop and Lightning are timed on the same
        batch with FLOPs counted; loading: tf.data is the baseline, the DataModule with 0 and 2 workers reads
        the same examples (``train_rows``, or the legacy reader's full batches) in each data view (the run's
    arch, or ``views_expected``); the converter reports MB/s."""
    settings = Settings(batch_size, threads=1, warmup=1, repeats=2, device="cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    bench_training(run, paths, out_dir / "training.tsv", settings)
    rows = {(r["side"], r["variant"]): r for r in read_tsv(out_dir / "training.tsv")}
    assert set(rows) == {("tf", "keras train step"), ("torch", "plain loop"), ("torch", "lightning")}
    for row in rows.values():
        assert row["status"] == "ok", row
        assert row["baseline"] == "keras train step" and float(row["items"]) == batch_size
        assert int(row["repeats"]) == 2 and float(row["peak_rss_mb"]) > 50
    assert float(rows[("tf", "keras train step")]["ratio"]) == pytest.approx(1.0)
    assert rows[("tf", "keras train step")]["flops_per_item"] == ""
    flops = {float(rows[("torch", v)]["flops_per_item"]) for v in ("plain loop", "lightning")}
    assert len(flops) == 1 and flops.pop() > 0

    bench_data(run, paths, out_dir / "data.tsv", settings)
    rows = read_tsv(out_dir / "data.tsv")
    for row in rows:
        assert row["status"] == "ok", row
    convert = [r for r in rows if r["task"] == "convert"]
    assert len(convert) == 1 and convert[0]["unit"] == "MB" and float(convert[0]["rate"]) > 0
    loaders = ("tf.data", "DataModule 0 workers", "DataModule 2 workers")
    views = {r["arch"] for r in rows if r["task"] == "loading"}
    assert views == set(views_expected or [run.arch_name])
    for view in views:
        loading = {r["variant"]: r for r in rows if r["task"] == "loading" and r["arch"] == view}
        assert tuple(loading) == loaders
        assert float(loading["tf.data"]["ratio"]) == pytest.approx(1.0)
        assert 0 < float(loading["tf.data"]["items"]) <= train_rows
        for variant in loaders[1:]:
            assert float(loading[variant]["items"]) == train_rows
            assert loading[variant]["baseline"] == "tf.data"
    assert not list(out_dir.glob(".bench.*"))  # the scratch files are gone
