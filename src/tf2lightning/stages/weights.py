"""Checkpoint conversion stages (torch): legacy weights -> safetensors, and TorchScript / ONNX exports."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.keras_h5 import read_keras_h5
from tf2lightning.core.tf_checkpoint import read_layer_variables
from tf2lightning.core.torch_weights import load_mapped, load_safetensors, save_safetensors, target_spec
from tf2lightning.errors import FormatError, MappingError, ParityError
from tf2lightning.families import family_module, family_spec
from tf2lightning.run import Run

log = logging.getLogger(__name__)


def read_legacy_weights(run: Run, model_dir: Path, source: str) -> dict[str, np.ndarray]:
    """The legacy model's variables from one of the family's declared saved formats.

    A family whose weights module defines ``read_source(run, path)`` reads its own formats (e.g. a plain
    PyTorch ``.pth``); otherwise Keras ``.h5`` files and TF checkpoints are read by canonical
    ``<layer>/<variable>`` names.
    """
    sources = family_spec(run.family).weight_sources
    if source not in sources:
        expected = ", ".join(sorted(sources))
        raise FormatError(f"{run.family}: unknown weight source {source!r}; expected one of {expected}")
    path = Path(model_dir) / sources[source]
    if not path.exists():
        raise FormatError(f"{path}: the legacy model directory has no {sources[source]}")
    weights_module = family_module(run.family, "weights")
    if hasattr(weights_module, "read_source"):
        return weights_module.read_source(run, path)
    return read_keras_h5(path) if path.suffix == ".h5" else read_layer_variables(path)


def convert_weights(run: Run, model_dir: str | Path, source: str, out: str | Path) -> None:
    """Map the legacy variables onto the port's state_dict (checked one-to-one) and save safetensors."""
    model = family_module(run.family, "model").build(run)
    weight_map = family_module(run.family, "weights").weight_map(run)
    legacy = read_legacy_weights(run, Path(model_dir), source)
    try:
        arrays = weight_map.apply(legacy, target_spec(model))
    except MappingError as error:
        source_path = Path(model_dir) / family_spec(run.family).weight_sources[source]
        raise MappingError(f"{source_path} does not fit the {run.name} port: {error}") from None
    save_safetensors(arrays, out, metadata={"run": run.name, "source": source})
    log.info("converted %d legacy tensors into %d parameters/buffers -> %s", len(legacy), len(arrays), out)


def load_port(run: Run, weights: str | Path) -> nn.Module:
    """The family's port with converted weights, in eval mode."""
    model = family_module(run.family, "model").build(run)
    load_mapped(model, load_safetensors(weights))
    return model.eval()


def _as_arrays(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    items = outputs if isinstance(outputs, tuple | list) else (outputs,)
    return [t.detach().numpy() for t in items]


def export_model(run: Run, weights: str | Path, torchscript_path: str | Path, onnx_path: str | Path) -> None:
    """Export TorchScript and ONNX (dynamic batch); both must reproduce eager outputs within 1e-5.

    Both files are verified under their temporary names, so a failed check leaves neither behind. A
    family's model module may define ``exported_outputs(outputs) -> tuple`` to compare what its users read
    instead of the raw outputs (Clair3: the heads' probabilities, as the Keras model returns them).
    """
    import onnxruntime

    torch.set_num_threads(run.threads)
    model = load_port(run, weights)
    model_module = family_module(run.family, "model")
    view = getattr(model_module, "exported_outputs", lambda outputs: outputs)
    inputs = model_module.example_inputs(run)
    names = [f"input_{i}" for i in range(len(inputs))]
    batch = torch.export.Dim("batch")
    with torch.no_grad(), atomic_path(torchscript_path) as ts_tmp, atomic_path(onnx_path) as onnx_tmp:
        expected = _as_arrays(view(model(*inputs)))
        torch.jit.save(torch.jit.trace(model, inputs), str(ts_tmp))
        torch.onnx.export(
            model,
            inputs,
            str(onnx_tmp),
            input_names=names,
            dynamic_shapes=tuple({0: batch} for _ in inputs),
            external_data=False,
            dynamo=True,
        )
        session = onnxruntime.InferenceSession(str(onnx_tmp), providers=["CPUExecutionProvider"])
        onnx_outputs = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        exported = {
            "TorchScript": _as_arrays(view(torch.jit.load(str(ts_tmp))(*inputs))),
            "ONNX Runtime": _as_arrays(view(tuple(torch.from_numpy(a) for a in onnx_outputs))),
        }
        for label, outputs in exported.items():
            error = max(float(np.abs(got - want).max()) for got, want in zip(outputs, expected, strict=True))
            log.info("%s export: max abs error vs eager %.3g", label, error)
            if error > 1e-5:
                raise ParityError(f"{label} export of {run.name} differs from eager by {error:.3g} (> 1e-5)")
