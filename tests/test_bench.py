"""Benchmark machinery: timing statistics, ratio tables, the machine record, and one real tiny DGA
TF-vs-torch inference benchmark through the child-process protocol (TF only in children)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.bench_checks import check_convert_rows
from tests.tfside import run_tf
from tf2lightning.bench.machine import cpu_model, describe, machine_info
from tf2lightning.bench.protocol import SideResult
from tf2lightning.bench.suite import (
    Settings,
    bench_data,
    bench_inference,
    bench_training,
    result_rows,
    tile_rows,
)
from tf2lightning.bench.timing import Timing, from_durations, measure
from tf2lightning.core.tsv import read_tsv
from tf2lightning.run import Run, run_to_dict


def test_measure_runs_warmup_untimed_then_repeats():
    calls = []
    timing = measure(lambda: calls.append(1), items=32, warmup=2, repeats=5)
    assert len(calls) == 7
    assert len(timing.samples) == 5
    assert timing.rate == pytest.approx(32 / timing.median_s)


def test_timing_median_iqr_and_rate():
    timing = Timing((0.4, 0.1, 0.2, 0.3, 0.5), items=10)
    assert timing.median_s == pytest.approx(0.3)
    assert timing.iqr_s == pytest.approx(0.2)  # inclusive quartiles 0.2 and 0.4
    assert timing.rate == pytest.approx(10 / 0.3)
    assert Timing.from_dict(json.loads(json.dumps(timing.to_dict()))) == timing


def test_timing_rejects_bad_samples_and_counts():
    with pytest.raises(ValueError):
        Timing(())
    with pytest.raises(ValueError):
        Timing((0.1, 0.0))
    with pytest.raises(ValueError):
        measure(lambda: None, items=1, repeats=0)
    with pytest.raises(ValueError, match="none left"):
        from_durations([0.1, 0.2], items=1, warmup=2, unit="examples")
    assert from_durations([9.0, 0.1, 0.3], items=4, warmup=1, unit="examples").samples == (0.1, 0.3)


def test_result_rows_ratio_against_fastest_tf_of_the_main_task():
    run = Run("dga", "d", "a")
    tf = SideResult(
        "tf", "inference", timings={"keras": Timing((1.0,), 10), "tf.function": Timing((0.5,), 10)}
    )
    torch = SideResult("torch", "inference", timings={"eager": Timing((0.25,), 10)}, errors={"onnx": "boom"})
    torch.notes["max_abs_err_vs_tf"] = {"eager": 1e-7}
    generic = SideResult("tf", "generic_route", timings={"tf2onnx": Timing((0.1,), 10)})
    rows = {r["variant"]: r for r in result_rows(run, [tf, torch, generic], Settings(), "fastest tf")}
    assert rows["tf.function"]["ratio"] == pytest.approx(1.0)
    assert rows["keras"]["ratio"] == pytest.approx(0.5)
    assert rows["eager"]["ratio"] == pytest.approx(2.0)
    assert rows["tf2onnx"]["ratio"] == pytest.approx(5.0)  # compared with TF, never the baseline itself
    assert rows["eager"]["max_abs_err_vs_tf"] == pytest.approx(1e-7)
    assert rows["onnx"]["status"] == "boom" and rows["onnx"]["ratio"] == ""


def test_measure_with_cpu_records_this_process_cpu_seconds():
    def spin():
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass

    timing = measure(spin, items=1, warmup=0, repeats=2, cpu=True)
    assert 0.015 < timing.extra["cpu_s"] < 1.0
    assert "cpu_s" not in measure(spin, items=1, warmup=0, repeats=1).extra


def test_convert_rows_compare_mb_per_cpu_second_and_examples_per_second():
    """Reader and converter in the same units: MB/s of input, MB per CPU second and examples/s; the ratio
    is per CPU second (the reader used 2 cores for 1 s, the converter 1 core for 2 s: equal per core)."""
    reader = SideResult(
        "tf", "convert", timings={"tf.data": Timing((1.0,), 10, "MB", {"cpu_s": 2.0, "examples": 500})}
    )
    converter = Timing((2.0,), 10, "MB", {"cpu_s": 2.0, "examples": 1000})
    torch = SideResult("torch", "convert", timings={"converter": converter})
    rows = {r["variant"]: r for r in result_rows(Run("dga", "d", ""), [reader, torch], Settings(), "tf.data")}
    assert (rows["tf.data"]["rate"], rows["tf.data"]["rate_per_core"], rows["tf.data"]["cpu_cores"]) == (
        10,
        5,
        2,
    )
    assert rows["tf.data"]["examples_per_s"] == 500 and rows["converter"]["examples_per_s"] == 500
    assert (rows["converter"]["rate"], rows["converter"]["rate_per_core"]) == (5, 5)
    assert (
        rows["tf.data"]["ratio"] == 1 and rows["converter"]["ratio"] == 1
    )  # per core, not 0.5 per wall second


def test_tile_rows_repeats_probe_inputs_to_a_batch():
    import numpy as np

    tiled = tile_rows(np.arange(3)[:, None], 7)
    assert tiled[:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_machine_record(tmp_path):
    info = machine_info()
    assert info["cpu"] and info["cpu_count"] >= 1 and 1 <= info["cpus_usable"] <= info["cpu_count"]
    assert "torch" in info["versions"] and "numpy" in info["versions"]
    assert "torch" in describe(info)
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU @ 1GHz\n")
    assert cpu_model(fake) == "Test CPU @ 1GHz"
    code = (
        "import sys, tf2lightning.bench.machine as m; m.machine_info(); "
        "print('tensorflow' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


TINY_ARCH = {
    "embed_dim": 8,
    "conv_filters": 8,
    "kernel_size": 3,
    "pool_size": 2,
    "lstm_units": 6,
    "attention_units": 5,
    "dropout": 0.1,
    "legacy_epochs": 1,
}
TINY_RUN = Run(
    "dga",
    "tiny",
    "Tiny",
    dataset={"n_train": 40, "n_val": 10, "n_test": 20, "max_len": 12},
    arch=TINY_ARCH,
    train={"batch_size": 8},
    parity={"n_probe": 4},
    threads=1,
)

LEGACY = """
import json, sys
from pathlib import Path
from tf2lightning.run import run_from_dict
from tf2lightning.families.dga import legacy
run = run_from_dict(json.loads(sys.argv[1]))
root = Path(sys.argv[2])
legacy.write_data(run, root / "data")
legacy.train_model(run, root / "data", root / "model")
legacy.reference(run, root / "model", root / "data", root / "reference.h5")
"""


def test_dga_inference_benchmark_through_child_processes(tmp_path):
    from tf2lightning.stages.weights import convert_weights, export_model

    run_tf(LEGACY, json.dumps(run_to_dict(TINY_RUN)), tmp_path)
    weights = tmp_path / "h5.safetensors"
    convert_weights(TINY_RUN, tmp_path / "model", "h5", weights)
    export_model(TINY_RUN, weights, tmp_path / "model.ts", tmp_path / "model.onnx")
    paths = {
        "model_dir": tmp_path / "model",
        "reference": tmp_path / "reference.h5",
        "weights": weights,
        "torchscript": tmp_path / "model.ts",
        "onnx": tmp_path / "model.onnx",
    }
    out = tmp_path / "bench" / "inference.tsv"
    out.parent.mkdir()
    bench_inference(
        TINY_RUN, paths, out, Settings(8, threads=1, warmup=1, repeats=3, device="cpu", generic_route=False)
    )
    rows = {(r["side"], r["variant"]): r for r in read_tsv(out)}
    for key in [("tf", "keras"), ("tf", "tf.function"), ("torch", "eager"), ("torch", "torchscript")]:
        assert rows[key]["status"] == "ok", rows[key]
        assert int(rows[key]["repeats"]) == 3 and float(rows[key]["items"]) == 8
        assert float(rows[key]["peak_rss_mb"]) > 50
    assert rows[("torch", "onnxruntime")]["status"] == "ok"
    for variant in ("eager", "torchscript", "onnxruntime"):
        assert float(rows[("torch", variant)]["max_abs_err_vs_tf"]) < 1e-5
    flops = {float(rows[("torch", v)]["flops_per_item"]) for v in ("eager", "torchscript", "onnxruntime")}
    assert len(flops) == 1 and flops.pop() > 0  # counted on the eager call: the same math in each
    assert rows[("tf", "keras")]["flops_per_item"] == "" and rows[("torch", "eager")]["mfu"] == ""
    # The baseline is the faster of the two TF variants ("fastest tf"), whichever it is on this machine, so
    # the larger TF ratio is 1 by construction; neither variant is assumed to be the faster.
    ratios = [float(rows[("tf", v)]["ratio"]) for v in ("keras", "tf.function")]
    assert max(ratios) == pytest.approx(1.0) and min(ratios) > 0
    assert not list(out.parent.glob(".bench.*"))  # the scratch inputs are gone


# --- model FLOPs columns --------------------------------------------------------------------------------


def test_with_flops_adds_achieved_tflops_and_mfu_only_with_a_peak(monkeypatch):
    import torch

    from tf2lightning.bench import mfu

    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16)
    per_item = mfu.flops_per_item(lambda: layer(x), items=4)
    assert per_item == 2 * 16 * 8  # one multiply-add per weight per example
    timing = Timing((0.5, 0.5), items=4)
    cpu = mfu.with_flops(timing, per_item, torch.device("cpu"))
    assert cpu.extra["achieved_tflops"] == pytest.approx(per_item * 8 / 1e12)  # 8 examples/s
    assert cpu.extra["mfu"] is None  # no peak on a CPU
    monkeypatch.setattr(mfu, "peak_flops", lambda device, dtype: 1e4)  # a device with a known peak
    gpu = mfu.with_flops(timing, per_item, torch.device("cpu"))
    assert gpu.extra["mfu"] == pytest.approx(per_item * 8 / 1e4)
    assert mfu.with_flops(timing, None, torch.device("cpu")) is timing
    assert Timing.from_dict(json.loads(json.dumps(gpu.to_dict()))).extra == gpu.extra


def test_result_rows_carry_flop_columns_and_leave_them_empty_where_unknown():
    run = Run("d3", "d", "a")
    timed = Timing((0.5,), 4, extra={"flops_per_item": 10.0, "achieved_tflops": 8e-11, "mfu": None})
    result = SideResult("torch", "training", timings={"plain loop": timed, "lightning": Timing((0.25,), 4)})
    rows = {r["variant"]: r for r in result_rows(run, [result], Settings(), "plain loop")}
    assert rows["plain loop"]["flops_per_item"] == 10.0 and rows["plain loop"]["achieved_tflops"] == 8e-11
    assert rows["plain loop"]["mfu"] == "" and rows["lightning"]["flops_per_item"] == ""
    assert rows["lightning"]["ratio"] == pytest.approx(2.0)


def test_throughput_labels_and_table_show_flops_only_when_present():
    from tf2lightning.bench.plots import bar_label
    from tf2lightning.bench.report import bench_columns

    row = {"rate": "10", "ratio": "1.5", "achieved_tflops": "0.002", "mfu": "0.12", "status": "ok"}
    assert bar_label(row) == "1.50x, 0.002 TFLOP/s, MFU 12.0%"
    assert bar_label({**row, "mfu": ""}) == "1.50x, 0.002 TFLOP/s"
    assert bar_label({**row, "rate": "", "status": "RuntimeError: boom"}) == "RuntimeError: boom"
    assert "mfu" in bench_columns([row])
    assert "mfu" not in bench_columns([{**row, "mfu": ""}])
    assert "achieved_tflops" in bench_columns([{**row, "mfu": ""}])


def test_child_env_hides_gpus_only_for_cpu_requests(monkeypatch):
    from tf2lightning.bench.protocol import child_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert child_env(1, "cpu")["CUDA_VISIBLE_DEVICES"] == ""
    assert child_env(1, "auto")["CUDA_VISIBLE_DEVICES"] == "0"
    assert child_env(3)["OMP_NUM_THREADS"] == "3"


# --- families ported from plain PyTorch: their plain loop vs Lightning, one torch child ----------------


def test_plain_pytorch_families_declare_their_benchmarks():
    from tf2lightning.bench.family_hooks import declared_tasks

    assert declared_tasks("d3") == ("training", "loading", "convert")
    assert declared_tasks("tabular") == ("training", "convert")  # its plain loop reads via the DataModule
    assert Settings.for_run(Run("tabular", "wine", "MLP")).device == "cpu"  # the plain loop is CPU-only
    assert Settings.for_run(Run("d3", "mpra", "Conv")).device == "auto"


D3_RUN = Run(
    "d3",
    "deepstarr",
    "Tran",
    dataset={"n_train": 12, "n_valid": 4, "n_test": 4},
    arch={
        "hidden_size": 16,
        "cond_dim": 16,
        "n_blocks": 1,
        "n_heads": 2,
        "conv_width": 8,
        "dropout": 0.0,
        "legacy_steps": 1,
        "legacy_batch_size": 4,
    },
    train={"lr": 1e-3, "warmup": 2, "ema_decay": 0.9, "gradient_clip": 1.0, "batch_size": 4},
    threads=1,
)


@pytest.fixture(scope="module")
def d3_files(tmp_path_factory):
    """The tiny D3 run's upstream file, data.h5 and converted one-step legacy checkpoint."""
    from tf2lightning.families.d3 import data, legacy
    from tf2lightning.stages.weights import convert_weights

    root = tmp_path_factory.mktemp("d3_bench")
    legacy.write_data(D3_RUN, root / "legacy_data")
    data.convert(D3_RUN, root / "legacy_data", root / "data.h5")
    legacy.train_model(D3_RUN, root / "legacy_data", root / "legacy_model")
    convert_weights(D3_RUN, root / "legacy_model", "pth", root / "pth.safetensors")
    (root / "bench").mkdir()
    return root


def test_d3_training_benchmark_times_its_plain_step_against_lightning(d3_files):
    import torch

    from tf2lightning.bench.flops import count_flops
    from tf2lightning.families.d3.bench import train_batch
    from tf2lightning.families.d3.training import Settings as D3Settings
    from tf2lightning.families.d3.training import batch_loss
    from tf2lightning.stages.weights import load_port

    paths = {
        "model_dir": d3_files / "legacy_model",
        "h5": d3_files / "data.h5",
        "weights": d3_files / "pth.safetensors",
    }
    out = d3_files / "bench" / "training.tsv"
    bench_training(D3_RUN, paths, out, Settings(4, threads=1, warmup=1, repeats=3, device="cpu"))
    rows = {(r["side"], r["variant"]): r for r in read_tsv(out)}
    assert set(rows) == {("torch", "plain loop"), ("torch", "lightning")}  # no TF side
    for row in rows.values():
        assert row["status"] == "ok" and row["baseline"] == "plain loop" and row["device"] == "cpu"
        assert int(row["repeats"]) == 3 and float(row["items"]) == 4
        assert row["mfu"] == ""  # no peak on a CPU
    plain, lightning = rows[("torch", "plain loop")], rows[("torch", "lightning")]
    assert float(plain["ratio"]) == pytest.approx(1.0)
    ratio = float(lightning["rate"]) / float(plain["rate"])
    # The TSV keeps 6 significant digits: both rates and the ratio are each off by up to 5e-6 relative.
    assert float(lightning["ratio"]) == pytest.approx(ratio, rel=2e-5)
    # the FLOPs of one step are the loss's forward and backward on this batch, as counted here
    model = load_port(D3_RUN, paths["weights"]).train()
    batch = {k: torch.as_tensor(v) for k, v in train_batch(D3_RUN, paths["h5"], 4).items()}
    settings = D3Settings.from_run(D3_RUN)
    expected = count_flops(lambda: batch_loss(model, settings, batch["seq"], batch["activity"], 0).backward())
    for row in (plain, lightning):
        assert float(row["flops_per_item"]) == pytest.approx(expected / 4, rel=1e-5)
        achieved = expected / 4 * float(row["rate"]) / 1e12
        assert float(row["achieved_tflops"]) == pytest.approx(achieved, rel=1e-4)


def test_d3_data_benchmark_times_the_upstream_reader_against_the_datamodule(d3_files):
    paths = {"legacy_dir": d3_files / "legacy_data", "h5": d3_files / "data.h5"}
    out = d3_files / "bench" / "data.tsv"
    bench_data(D3_RUN, paths, out, Settings(4, threads=1, warmup=1, repeats=2, device="cpu"))
    rows = {(r["task"], r["variant"]): r for r in read_tsv(out)}
    assert set(rows) == {
        ("loading", "legacy reader"),
        ("loading", "DataModule 0 workers"),
        ("loading", "DataModule 2 workers"),
        ("convert", "legacy reader"),
        ("convert", "converter"),
    }
    for row in rows.values():
        assert row["status"] == "ok" and row["side"] == "torch", row
    for variant in ("legacy reader", "DataModule 0 workers", "DataModule 2 workers"):
        assert float(rows[("loading", variant)]["items"]) == 12  # 3 full batches of the 12 train rows
        assert rows[("loading", variant)]["baseline"] == "legacy reader"
    assert float(rows[("loading", "legacy reader")]["ratio"]) == pytest.approx(1.0)
    check_convert_rows([r for r in read_tsv(out) if r["task"] == "convert"], "legacy reader", n_examples=20)


def test_d3_legacy_reader_yields_what_the_plain_loop_trains_on(d3_files):
    import numpy as np

    from tf2lightning.families.d3 import upstream
    from tf2lightning.families.d3.bench import legacy_batches
    from tf2lightning.families.d3.datasets import dataset_kind
    from tf2lightning.families.d3.legacy import cycle_batches

    seqs, activity = upstream.read_split(dataset_kind(D3_RUN), d3_files / "legacy_data", "train")
    order = next(cycle_batches(len(seqs), 4, D3_RUN.seed))  # the first batch of legacy.train_model
    batches = list(legacy_batches(D3_RUN, d3_files / "legacy_data", 4))
    assert len(batches) == 3 and len(list(legacy_batches(D3_RUN, d3_files / "legacy_data", 4))) == 3
    np.testing.assert_array_equal(batches[0]["seq"].numpy(), seqs[order])
    np.testing.assert_array_equal(batches[0]["activity"].numpy(), activity[order])


def test_tabular_training_benchmark_times_whole_runs_of_both_loops(tmp_path):
    import torch

    from tf2lightning.bench.flops import count_flops
    from tf2lightning.config import validate_families
    from tf2lightning.families.tabular import data, legacy, model, teacher
    from tf2lightning.stages.weights import convert_weights

    arch = {"kind": "mlp", "hidden": [16, 8], "activation": "geglu", "legacy_epochs": 1}
    section = {
        "datasets": {"wine": {"teacher_max_iter": 5}},
        "archs": {"MLP": arch},
        "train": {"max_epochs": 2, "batch_size": 32, "patience": 1},
    }
    config = {"seed": 1, "threads": 1, "families": {"tabular": section}}
    validate_families(config)
    run = Run.from_config(config, "tabular", "wine", "MLP")
    (tmp_path / "legacy_data").mkdir()
    legacy.write_data(run, tmp_path / "legacy_data")
    data.convert(run, tmp_path / "legacy_data", tmp_path / "data.h5")
    teacher.fit_teacher(run, {"data": tmp_path / "data.h5"}, {"probs": tmp_path / "probs.h5"})
    legacy.train_model(run, tmp_path / "legacy_data", tmp_path / "legacy_model")
    convert_weights(run, tmp_path / "legacy_model", "pt", tmp_path / "pt.safetensors")
    paths = {
        "model_dir": tmp_path / "legacy_model",
        "h5": tmp_path / "data.h5",
        "weights": tmp_path / "pt.safetensors",
        "teacher": tmp_path / "probs.h5",
    }
    out = tmp_path / "bench" / "training.tsv"
    out.parent.mkdir()
    bench_training(run, paths, out, Settings.for_run(run, warmup=1, repeats=2))
    rows = {r["variant"]: r for r in read_tsv(out)}
    assert set(rows) == {"plain loop", "lightning"}
    table = data.read_table(tmp_path / "data.h5")
    n_train, n_val = int((table.split == 0).sum()), int((table.split == 1).sum())
    for row in rows.values():
        assert row["status"] == "ok" and row["side"] == "torch" and row["device"] == "cpu", row
        assert float(row["items"]) == n_train * 2  # every epoch ran: early stopping is off
        assert int(row["repeats"]) == 2
    ratio = float(rows["lightning"]["rate"]) / float(rows["plain loop"]["rate"])
    assert float(rows["lightning"]["ratio"]) == pytest.approx(ratio, rel=2e-5)  # 3 values of 6 digits
    # per example trained: forward and backward of one train row, plus its share of the validation forward
    forward = count_flops(lambda: model.build(run)(torch.zeros(1, table.x.shape[1])))
    per_item = float(rows["plain loop"]["flops_per_item"])
    validation = forward * n_val / n_train
    assert 2 * forward < per_item - validation <= 3 * forward
    assert float(rows["lightning"]["flops_per_item"]) == per_item
    assert not list(out.parent.glob(".bench.*"))


def test_bench_table_prints_rates_ratios_and_failures(tmp_path, capsys):
    from tf2lightning.bench.suite import COLUMNS
    from tf2lightning.cli import main
    from tf2lightning.core.tsv import write_tsv

    tf = SideResult("tf", "training", timings={"keras train step": Timing((0.5,), 1000)})
    torch = SideResult(
        "torch", "training", timings={"lightning": Timing((0.25,), 1000)}, errors={"x": "boom"}
    )
    torch.peak_rss_mb = 480.4
    rows = result_rows(Run("dga", "d", "a"), [tf, torch], Settings(), "keras train step")
    write_tsv(tmp_path / "training.tsv", rows, COLUMNS)
    assert main(["bench-table", str(tmp_path / "training.tsv")]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line.split(" | ")[3:] for line in out]
    assert lines[2] == ["keras train step", "2,000 examples/s", "1.00", "keras train step", "–", "– |"]
    assert lines[3] == ["lightning", "4,000 examples/s", "2.00", "keras train step", "–", "480 MB |"]
    assert out[4] == "| dga d_a | training | torch | x | boom | | | | |"


def test_bench_table_shows_tflops_and_mfu_only_where_a_row_has_them():
    from tf2lightning.bench.suite import markdown_table

    extra = {"flops_per_item": 1e9, "achieved_tflops": 0.5, "mfu": 0.25}
    torch = SideResult("torch", "training", timings={"lightning": Timing((0.25,), 1000, extra=extra)})
    lines = markdown_table(result_rows(Run("dga", "d", "a"), [torch], Settings(), None)).splitlines()
    assert lines[0].endswith("| peak RSS | TFLOP/s | MFU |") and lines[1] == "|---" * 11 + "|"
    assert lines[2].endswith("| – | 0.5 | 25.0% |")
    torch.timings["lightning"] = Timing((0.25,), 1000, extra={**extra, "mfu": None})
    lines = markdown_table(result_rows(Run("dga", "d", "a"), [torch], Settings(), None)).splitlines()
    assert lines[0].endswith("| peak RSS | TFLOP/s |") and lines[2].endswith("| – | 0.5 |")


def test_a_combination_page_shows_the_loading_of_its_own_data_view(tmp_path):
    from tf2lightning.bench.report import combination_rows
    from tf2lightning.bench.suite import COLUMNS
    from tf2lightning.core.tsv import write_tsv

    def row(task, arch, variant):
        return {**dict.fromkeys(COLUMNS, ""), "task": task, "arch": arch, "variant": variant, "status": "ok"}

    write_tsv(tmp_path / "training.tsv", [row("training", "P", "lightning")], COLUMNS)
    views = ("pileup", "full_alignment")
    data = [row("loading", view, "tf.data") for view in views] + [row("convert", "", "convert")]
    write_tsv(tmp_path / "data.tsv", data, COLUMNS)
    tables = [tmp_path / "training.tsv", tmp_path / "data.tsv"]
    rows = combination_rows(Run("clair3", "hifi", "P", arch={"network": "P"}), tables)
    assert [(r["task"], r["arch"]) for r in rows] == [
        ("training", "P"),
        ("loading", "pileup"),
        ("convert", ""),
    ]
    rows = combination_rows(Run("clair3", "hifi", "F", arch={"network": "F"}), tables)
    assert [r["arch"] for r in rows if r["task"] == "loading"] == ["full_alignment"]
    assert len(combination_rows(Run("dga", "d", "a"), tables)) == 4  # no views: every row
