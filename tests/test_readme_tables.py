"""``tf2lightning bench-table <results>``: the README's benchmark tables from a run's bench TSVs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tf2lightning.cli import main
from tf2lightning.core.tsv import write_tsv

# Columns in another order than the bench rules write them, one they do not write, and some they do left
# out: the tables read columns by name.
COLUMNS = ["variant", "family", "dataset", "arch", "task", "unit", "rate", "baseline", "ratio", "status"]
COLUMNS += ["batch_size", "threads", "peak_rss_mb", "max_abs_err_vs_tf", "something_new"]
COLUMNS += ["rate_per_core", "examples_per_s"]


def row(family: str, dataset: str, arch: str, task: str, variant: str, rate: float, **extra: object) -> dict:
    base = {"family": family, "dataset": dataset, "arch": arch, "task": task, "variant": variant}
    unit = "MB" if task == "convert" else "examples"
    defaults = {"unit": unit, "baseline": "", "ratio": "", "status": "ok", "batch_size": 64}
    cells = {"threads": 1, "peak_rss_mb": "", "max_abs_err_vs_tf": "", "something_new": "x"}
    cells |= {"rate_per_core": "", "examples_per_s": ""}
    return {**base, **defaults, **cells, "rate": rate, **extra}


def write(results: Path, where: str, rows: list[dict]) -> None:
    path = results / where
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(path, rows, COLUMNS)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    tf, keras = {"baseline": "tf.function"}, {"baseline": "keras train step"}
    write(
        results,
        "dga/domains_CnnLstm/bench/inference.tsv",
        [
            row("dga", "domains", "CnnLstm", "inference", "tf.function", 2000.0, ratio=1.0, **tf),
            row(
                "dga",
                "domains",
                "CnnLstm",
                "inference",
                "eager",
                3000.0,
                ratio=1.5,
                max_abs_err_vs_tf=8.9e-8,
                **tf,
            ),
            row(
                "dga",
                "domains",
                "CnnLstm",
                "generic_route",
                "tf2onnx+onnx2torch",
                "",
                status="not installed",
                **tf,
            ),
            row("dga", "domains", "CnnLstm", "inference", "brand new variant", 10.0, ratio=0.005, **tf),
        ],
    )
    write(
        results,
        "clair3/ont_F/bench/training.tsv",
        [
            row("clair3", "ont", "F", "training", "keras train step", 400.0, ratio=1.0, **keras),
            row("clair3", "ont", "F", "training", "plain loop", 800.0, ratio=2.0, **keras),
            row("clair3", "ont", "F", "training", "lightning", 900.0, ratio=2.25, **keras),
        ],
    )
    plain = {"baseline": "plain loop"}
    write(
        results,
        "d3/deepstarr_Tran/bench/training.tsv",
        [
            row("d3", "deepstarr", "Tran", "training", "plain loop", 200.0, ratio=1.0, **plain),
            row("d3", "deepstarr", "Tran", "training", "lightning", 180.0, ratio=0.9, **plain),
        ],
    )
    data = {"baseline": "tf.data"}
    write(
        results,
        "clair3/ont/bench/data.tsv",
        [
            row("clair3", "ont", "pileup", "loading", "tf.data", 6000.0, ratio=1.0, **data),
            row("clair3", "ont", "pileup", "loading", "DataModule 0 workers", 18000.0, ratio=3.0, **data),
            row("clair3", "ont", "pileup", "loading", "DataModule 2 workers", 9000.0, ratio=1.5, **data),
            row("clair3", "ont", "full_alignment", "loading", "tf.data", 400.0, ratio=1.0, **data),
            row(
                "clair3",
                "ont",
                "full_alignment",
                "loading",
                "DataModule 0 workers",
                4000.0,
                ratio=10.0,
                **data,
            ),
            row(
                "clair3",
                "ont",
                "",
                "convert",
                "tf.data",
                7.0,
                rate_per_core=8.0,
                examples_per_s=1500,
                ratio=1.0,
                **data,
            ),
            row(
                "clair3",
                "ont",
                "",
                "convert",
                "converter",
                14.0,
                rate_per_core=20.0,
                examples_per_s=3000,
                ratio=2.5,
                **data,
            ),
        ],
    )
    converter = {"unit": "MB", "rate_per_core": 1.6, "examples_per_s": 600}
    write(
        results,
        "tabular/wine/bench/data.tsv",
        [row("tabular", "wine", "", "convert", "converter", 1.5, **converter)],
    )
    # an older row: the converter under another name, without CPU seconds
    write(results, "d3/mpra/bench/data.tsv", [row("d3", "mpra", "", "convert", "convert", 70.0)])
    machine = {"cpu": "AMD EPYC", "cpus_usable": 2, "cpu_count": 2, "gpus": [], "python": "3.11.7"}
    machine["memory_gib"] = 23.5
    (results / "report").mkdir()
    (results / "report/machine.json").write_text(json.dumps({**machine, "versions": {"torch": "2.13.0"}}))
    return results


def test_one_command_prints_every_readme_table(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-table", str(results)]) == 0
    out = capsys.readouterr().out
    machine = "AMD EPYC (2 of 2 cores usable), no GPU, Python 3.11.7, torch 2.13.0, tensorflow -, 23.5 GiB"
    assert out.startswith(f"Machine: {machine} memory\n")
    lines = out.splitlines()
    assert "| inference | TF `tf.function` (baseline) | 2,000 examples/s | 1.00 | – | – |" in lines
    assert "| inference | torch eager | 3,000 examples/s | 1.50 | 8.9e-08 | – |" in lines
    assert "| inference | tf2onnx → onnx2torch (generic route) | failed: not installed | – | – | – |" in lines
    assert "| inference | brand new variant | 10 examples/s | 0.01 | – | – |" in lines  # unknown: own name
    assert "| d3 | deepstarr_Tran | 200 examples/s | 180 examples/s | 0.90 |" in lines
    assert "| clair3 | ont_F | 400 examples/s | 800 examples/s | 900 examples/s | 2.25 |" in lines
    # loading: columns by variant name, "–" where a view lacks one
    header = "| data | legacy pipeline (baseline) | HDF5 DataModule, 0 workers | HDF5 DataModule, 2 workers |"
    assert header in lines
    pileup = "| 6,000 examples/s (tf.data) | 18,000 examples/s (3.00×) | 9,000 examples/s (1.50×) |"
    assert f"| clair3 ont, pileup {pileup}" in lines
    assert (
        "| clair3 ont, full_alignment | 400 examples/s (tf.data) | 4,000 examples/s (10.00×) | – |" in lines
    )
    assert "| data | reader (baseline) | reader | converter | converter / reader per core |" in lines
    reader = "8 MB/s per core (7 MB/s, 1,500 examples/s)"
    converter = "20 MB/s per core (14 MB/s, 3,000 examples/s)"
    assert f"| clair3 ont | `tf.data` on the legacy records | {reader} | {converter} | 2.50 |" in lines
    assert "| tabular wine | – | – | 1.6 MB/s per core (1.5 MB/s, 600 examples/s) | – |" in lines  # no reader
    assert "| d3 mpra | – | – | 70 MB/s | – |" in lines
    assert "training, plain loop vs Lightning (batch 64, threads 1; " in out


def test_a_results_dir_without_bench_rows_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench-table", str(tmp_path)]) == 1
    assert "no such file" in capsys.readouterr().err
