"""The torch side of the benchmarks (runs in a child; imports torch, never TensorFlow).

Tasks, each ``task(request, variants)``: ``inference`` (eager, TorchScript ``model.ts``, ONNX Runtime
``model.onnx``, each also checked against the TF side's outputs on the same batch), ``training`` (a plain
loop and Lightning, :mod:`~tf2lightning.bench.torch_training`), ``loading`` (the family's DataModule over
``data.h5`` with 0 and 2 workers, and for families ported from plain PyTorch their own legacy reader),
``convert`` (the family's data converter, MB/s of legacy input and examples/s) and ``generic_route``
(onnx2torch on the tf2onnx file, where onnx2torch is installed). Torch variants carry their model FLOPs
where they can be counted (:mod:`~tf2lightning.bench.mfu`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tf2lightning.bench.family_hooks import bench_module, plain_torch
from tf2lightning.bench.mfu import flops_per_item, with_flops
from tf2lightning.bench.protocol import CONVERTER, LEGACY_READER, Variants
from tf2lightning.bench.reading import converted_examples, input_megabytes, timed_pass, timed_reads
from tf2lightning.bench.timing import Timing, measure
from tf2lightning.bench.torch_env import configure_threads, load_npz, pick_device, sync_for
from tf2lightning.bench.torch_training import training
from tf2lightning.families import family_module
from tf2lightning.run import Run, run_from_dict
from tf2lightning.stages.weights import load_port

__all__ = ["TASKS", "configure_threads", "pick_device"]

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def port_inputs(run: Run, arrays: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    """The port's positional inputs from the reference-named arrays, in the exported dtypes."""
    model_module = family_module(run.family, "model")
    make = getattr(model_module, "parity_inputs", lambda a: tuple(a.values()))
    tensors = [torch.as_tensor(np.asarray(x)) for x in make(dict(arrays))]
    examples = model_module.example_inputs(run)
    return tuple(t.to(e.dtype) for t, e in zip(tensors, examples, strict=True))


def _first_output(value: Any) -> torch.Tensor:
    while isinstance(value, list | tuple):
        value = value[0]
    return torch.as_tensor(value).float().cpu()


def _as_outputs(value: Any) -> Any:
    """Outputs (eager, TorchScript or ONNX Runtime) as float CPU tensors; several stay a tuple."""
    if isinstance(value, list | tuple):
        items = tuple(_as_outputs(v) for v in value)
        return items[0] if len(items) == 1 else items
    return torch.as_tensor(value).float().cpu()


def error_vs_tf(run: Run, output: Any, tf_outputs: Mapping[str, np.ndarray]) -> float | None:
    """Max abs error of the port's outputs (all of them, as the parity stage passes them to the
    family's ``parity_outputs(run)`` or ``PARITY_OUTPUTS``), brought to the legacy outputs, vs the TF side."""
    model_module = family_module(run.family, "model")
    transforms = getattr(model_module, "parity_outputs", lambda run: model_module.PARITY_OUTPUTS)(run)
    errors = [
        float((fn(_as_outputs(output)) - torch.as_tensor(tf_outputs[name]).float()).abs().max())
        for name, fn in transforms.items()
        if name in tf_outputs
    ]
    return max(errors) if errors else None


def inference(request: dict[str, Any], variants: Variants) -> None:
    import onnxruntime

    run, paths, device = run_from_dict(request["run"]), request["paths"], pick_device(request)
    inputs = port_inputs(run, load_npz(paths["inputs"]))
    tf_outputs = load_npz(paths["tf_outputs"]) if Path(paths.get("tf_outputs", "")).is_file() else {}
    items = len(inputs[0])
    on_device = tuple(t.to(device) for t in inputs)
    eager = load_port(run, paths["weights"]).to(device)
    scripted = torch.jit.load(paths["torchscript"], map_location=device).eval()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(request["threads"])
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = onnxruntime.InferenceSession(paths["onnx"], options, providers=providers)
    feed = {
        i.name: t.numpy().astype(ORT_TYPES.get(i.type, t.numpy().dtype))
        for i, t in zip(session.get_inputs(), inputs, strict=True)
    }

    def torch_call(model: Callable[..., Any]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode():
                return model(*on_device)

        return call

    calls = {
        "eager": torch_call(eager),
        "torchscript": torch_call(scripted),
        "onnxruntime": lambda: session.run(None, feed),
    }
    ort_device = device if "CUDAExecutionProvider" in session.get_providers() else torch.device("cpu")
    counted: dict[str, float | None] = {}

    def timed(name: str, call: Callable[[], Any]) -> Timing:
        """The variant's timing with the model FLOPs counted on the eager call (the same math in all)."""
        if name == "eager":
            counted["per_item"] = flops_per_item(call, items)
        sync = None if name == "onnxruntime" else sync_for(device)
        timing = measure(
            call, items=items, warmup=int(request["warmup"]), repeats=int(request["repeats"]), sync=sync
        )
        return with_flops(timing, counted.get("per_item"), ort_device if name == "onnxruntime" else device)

    errors = {}
    for name, call in calls.items():
        if variants.record(name, lambda name=name, call=call: timed(name, call)):
            errors[name] = error_vs_tf(run, call(), tf_outputs)
    variants.notes["max_abs_err_vs_tf"] = errors
    variants.notes["onnx_providers"] = session.get_providers()


def loading(request: dict[str, Any], variants: Variants) -> None:
    """The family's DataModule with 0 and 2 workers; first, for a family ported from plain PyTorch, the
    reader its plain loop used (``bench.legacy_batches`` on the legacy files), the baseline."""
    run, paths = run_from_dict(request["run"]), request["paths"]
    module = bench_module(run.family)
    if plain_torch(run.family) and hasattr(module, "legacy_batches"):
        batches = module.legacy_batches(run, Path(paths["legacy_dir"]), int(request["batch_size"]))
        variants.record(LEGACY_READER, lambda: passes(batches, request))
    data = family_module(run.family, "data")
    for workers in (0, 2):
        train = {**run.train, "num_workers": workers, "batch_size": int(request["batch_size"])}
        datamodule = data.make_datamodule(dataclasses.replace(run, train=train), Path(paths["h5"]))
        variants.record(f"DataModule {workers} workers", lambda dm=datamodule: _epochs(dm, request))


def _epochs(datamodule: Any, request: Mapping[str, Any]) -> Timing:
    """Full passes over the DataModule's train loader."""
    datamodule.setup("fit")
    return passes(datamodule.train_dataloader(), request)


def passes(batches: Iterable[Any], request: Mapping[str, Any]) -> Timing:
    """Full passes over ``batches`` (the first one, with file opening and worker start-up, is the warm-up);
    examples counted from the first tensor of each batch."""
    counts = []

    def one_pass() -> None:
        n = 0
        for batch in batches:
            first = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
            n += len(first)
        counts.append(n)

    timing = measure(one_pass, items=1, warmup=1, repeats=int(request["repeats"]))
    return Timing(timing.samples, float(counts[0]), "examples")


def convert(request: dict[str, Any], variants: Variants) -> None:
    """The family's data converter (``data.convert``, legacy files -> HDF5) in MB/s of legacy input and
    examples/s; first, for a family ported from plain PyTorch, its plain loop's reader over the same files
    (``bench.legacy_reads``), the baseline (:mod:`~tf2lightning.bench.reading`)."""
    run, paths = run_from_dict(request["run"]), request["paths"]
    legacy_dir = Path(paths["legacy_dir"])
    megabytes = input_megabytes(legacy_dir)
    module = bench_module(run.family)
    if plain_torch(run.family) and hasattr(module, "legacy_reads"):
        pipelines = module.legacy_reads(run, legacy_dir, int(request["batch_size"]))
        variants.record(LEGACY_READER, lambda: timed_reads(pipelines, legacy_dir, request))
    data = family_module(run.family, "data")
    with tempfile.TemporaryDirectory(dir=paths.get("scratch")) as tmp:
        out = Path(tmp) / "data.h5"

        def once() -> int:
            out.unlink(missing_ok=True)
            data.convert(run, legacy_dir, out)
            return converted_examples(out)

        variants.record(CONVERTER, lambda: timed_pass(once, megabytes, request))
        variants.notes["h5_mb"] = out.stat().st_size / 1e6 if out.exists() else None
    variants.notes["legacy_mb"] = megabytes


def generic_route(request: dict[str, Any], variants: Variants) -> None:
    """onnx2torch on the ONNX file tf2onnx made (the TF side's generic route), where both exist."""
    paths = request["paths"]
    if not Path(paths["onnx_in"]).is_file():
        variants.error("tf2onnx+onnx2torch", "no ONNX file from tf2onnx to convert")
        return
    try:
        import onnx2torch
    except ImportError as error:
        variants.error("tf2onnx+onnx2torch", f"onnx2torch not installed in the torch environment: {error}")
        return
    arrays = load_npz(paths["inputs"])
    try:
        model = onnx2torch.convert(paths["onnx_in"]).eval()
    except Exception as error:
        variants.error("tf2onnx+onnx2torch", f"onnx2torch conversion failed: {type(error).__name__}: {error}")
        return
    inputs = tuple(torch.as_tensor(a) for a in arrays.values())
    tf_outputs = load_npz(paths["tf_outputs"])

    def call() -> Any:
        with torch.inference_mode():
            return model(*inputs)

    reference = next(iter(tf_outputs.values()))
    variants.notes["max_abs_err_vs_tf"] = float(
        (_first_output(call()) - torch.as_tensor(reference)).abs().max()
    )
    variants.record(
        "tf2onnx+onnx2torch",
        lambda: measure(
            call, items=len(inputs[0]), warmup=int(request["warmup"]), repeats=int(request["repeats"])
        ),
    )


TASKS: dict[str, Callable[[dict[str, Any], Variants], None]] = {
    "inference": inference,
    "training": training,
    "loading": loading,
    "convert": convert,
    "generic_route": generic_route,
}
