"""The TensorFlow side of the benchmarks (runs in a child; imports TensorFlow, never torch).

Tasks, each ``task(request, variants)``: ``inference`` (Keras call and ``tf.function``), ``training``
(the family's Keras/TF step), ``loading`` (the family's ``tf.data`` pipeline over the legacy TFRecords),
``convert`` (the family's ``tf.data`` reader over every legacy file, what the torch side's converter
converts: :mod:`~tf2lightning.bench.reading`), ``generic_route`` (tf2onnx -> ONNX Runtime, the route a user
might try instead of a port).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf2lightning.bench.family_hooks import bench_module, hook
from tf2lightning.bench.protocol import Variants
from tf2lightning.bench.reading import timed_reads
from tf2lightning.bench.timing import Timing, measure
from tf2lightning.families import family_module
from tf2lightning.run import Run, run_from_dict


def configure_threads(threads: int) -> None:
    """Intra- and inter-op pools of ``threads`` each (before any op runs)."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def load_keras_model(run: Run, model_dir: Path) -> Any:
    """The family's ``bench.tf_model(run, dir)``, else its ``legacy.load_model(dir)``."""
    module = bench_module(run.family)
    if module is not None and hasattr(module, "tf_model"):
        return module.tf_model(run, model_dir)
    return family_module(run.family, "legacy").load_model(model_dir)


def model_feed(arrays: Mapping[str, np.ndarray]) -> Any:
    """One array for a single-input model, else the dict of named inputs."""
    return next(iter(arrays.values())) if len(arrays) == 1 else dict(arrays)


def named_outputs(model: Any, result: Any) -> dict[str, np.ndarray]:
    """Outputs by the model's output names (``output_<i>`` where it has none)."""
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    values = list(result) if isinstance(result, list | tuple) else [result]
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(values):
        names = [f"output_{i}" for i in range(len(values))]
    return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def inference(request: dict[str, Any], variants: Variants) -> None:
    run = run_from_dict(request["run"])
    model = load_keras_model(run, Path(request["paths"]["model_dir"]))
    arrays = load_npz(request["paths"]["inputs"])
    feed = model_feed({k: tf.constant(v) for k, v in arrays.items()})
    items = len(next(iter(arrays.values())))
    np.savez(request["paths"]["tf_outputs"], **named_outputs(model, model(feed, training=False)))
    timed = {"keras": lambda: model(feed, training=False)}
    compiled = tf.function(lambda x: model(x, training=False))
    timed["tf.function"] = lambda: compiled(feed)
    for name, fn in timed.items():
        variants.record(name, lambda fn=fn: _timed_numpy(fn, items, request))


def _timed_numpy(fn: Callable[[], Any], items: int, request: dict[str, Any]) -> Timing:
    """Time ``fn`` including the copy of its result to numpy (so lazy execution is counted)."""
    return measure(
        lambda: tf.nest.map_structure(np.asarray, fn()),
        items=items,
        warmup=int(request["warmup"]),
        repeats=int(request["repeats"]),
    )


def training(request: dict[str, Any], variants: Variants) -> None:
    run = run_from_dict(request["run"])
    model = load_keras_model(run, Path(request["paths"]["model_dir"]))
    batch = load_npz(request["paths"]["batch"])
    step = hook(run.family, "tf_train_step")(run, model, batch)
    items = len(next(iter(batch.values())))
    variants.record(
        "keras train step",
        lambda: measure(step, items=items, warmup=int(request["warmup"]), repeats=int(request["repeats"])),
    )


def loading(request: dict[str, Any], variants: Variants) -> None:
    run = run_from_dict(request["run"])
    dataset = hook(run.family, "tf_dataset")(run, Path(request["paths"]["legacy_dir"]), request["batch_size"])
    variants.record("tf.data", lambda: _epochs(dataset, request))


def _epochs(dataset: Any, request: dict[str, Any]) -> Timing:
    """Full passes over ``dataset``; examples counted from the first tensor of each batch."""
    counts = []

    def one_pass() -> None:
        n = 0
        for batch in dataset:
            n += int(tf.nest.flatten(batch)[0].shape[0])
        counts.append(n)

    timing = measure(one_pass, items=1, warmup=1, repeats=int(request["repeats"]))
    return Timing(timing.samples, float(counts[0]), "examples")


def convert(request: dict[str, Any], variants: Variants) -> None:
    """The reader the converter is compared with: ``bench.legacy_reads`` over every legacy file."""
    run, legacy_dir = run_from_dict(request["run"]), Path(request["paths"]["legacy_dir"])
    pipelines = hook(run.family, "legacy_reads")(run, legacy_dir, request["batch_size"])
    variants.record("tf.data", lambda: timed_reads(pipelines, legacy_dir, request))


def generic_route(request: dict[str, Any], variants: Variants) -> None:
    """tf2onnx on the Keras model, then ONNX Runtime: does it convert, its error vs TF, its speed."""
    run = run_from_dict(request["run"])
    try:
        import tf2onnx
    except ImportError as error:
        variants.error("tf2onnx+onnxruntime", f"tf2onnx not importable in the TF environment: {error}")
        return
    import onnxruntime

    model = load_keras_model(run, Path(request["paths"]["model_dir"]))
    arrays = load_npz(request["paths"]["inputs"])
    reference = named_outputs(model, model(model_feed(arrays), training=False))
    signature = [
        tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype), name=name) for name, a in arrays.items()
    ]
    start = time.perf_counter()
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    except Exception as error:
        variants.error("tf2onnx+onnxruntime", f"tf2onnx conversion failed: {type(error).__name__}: {error}")
        return
    variants.notes["tf2onnx_version"] = tf2onnx.__version__
    variants.notes["convert_s"] = time.perf_counter() - start
    onnx_path = Path(request["paths"]["onnx_out"])
    onnx_path.write_bytes(proto.SerializeToString())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(request["threads"])
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {i.name: arrays[name] for i, name in zip(session.get_inputs(), arrays, strict=True)}
    outputs = session.run(None, feed)
    variants.notes["max_abs_err_vs_tf"] = max(
        float(np.abs(got - want).max()) for got, want in zip(outputs, reference.values(), strict=True)
    )
    items = len(next(iter(arrays.values())))
    variants.record(
        "tf2onnx+onnxruntime",
        lambda: measure(
            lambda: session.run(None, feed),
            items=items,
            warmup=int(request["warmup"]),
            repeats=int(request["repeats"]),
        ),
    )


TASKS: dict[str, Callable[[dict[str, Any], Variants], None]] = {
    "inference": inference,
    "training": training,
    "loading": loading,
    "convert": convert,
    "generic_route": generic_route,
}
