"""One check for a TF family's training and data benchmarks, run through the real child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf2lightning.bench.reading import converted_examples
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
    arch, or ``views_expected``); convert: see :func:`check_convert_rows`."""
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
    check_convert_rows(
        [r for r in rows if r["task"] == "convert"], "tf.data", converted_examples(paths["h5"])
    )
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


def check_convert_rows(rows: list[dict[str, str]], reader: str, n_examples: int) -> None:
    """The convert task: the legacy reader (the baseline) and the converter, each with one thread over the
    same legacy files (the same MB), in MB/s, MB per CPU second and examples/s; the converter's ratio is
    its MB per CPU second over the reader's, and it wrote every one of ``n_examples``."""
    by_variant = {r["variant"]: r for r in rows}
    assert set(by_variant) == {reader, "converter"}
    base, converter = by_variant[reader], by_variant["converter"]
    for row in (base, converter):
        assert row["status"] == "ok" and row["unit"] == "MB" and row["threads"] == "1", row
        assert row["baseline"] == reader and float(row["items"]) == float(base["items"]) > 0
        rate, median = float(row["rate"]), float(row["median_s"])
        assert rate == pytest.approx(float(row["items"]) / median, rel=1e-4)
        assert float(row["cpu_cores"]) > 0
        assert float(row["rate_per_core"]) == pytest.approx(rate / float(row["cpu_cores"]), rel=1e-4)
    assert float(base["ratio"]) == pytest.approx(1.0)
    per_core = float(converter["rate_per_core"]) / float(base["rate_per_core"])
    assert float(converter["ratio"]) == pytest.approx(per_core, rel=1e-4)
    examples = float(converter["examples_per_s"]) * float(converter["median_s"])
    assert examples == pytest.approx(n_examples, rel=1e-4)
    # the reader may leave a last partial batch out (Clair3's reader yields full batches only)
    assert 0 < float(base["examples_per_s"]) * float(base["median_s"]) <= n_examples * (1 + 1e-4)
