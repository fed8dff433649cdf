"""Upstream Clair3 model files -> checkpoint prefix, variables and network sizes (numpy only, no TensorFlow).

What ``legacy_model`` may name, as upstream wrote it:

* a released model folder: ``pileup.*`` and ``full_alignment.*`` side by side, each written by
  ``model.save_weights(prefix)``; the arch's network picks which one;
* a checkpoint prefix (``…/pileup``, or its ``.index`` / ``.data-*`` file; sharded data files too);
* a Train.py ``ModelCheckpoint`` SavedModel folder (``saved_model.pb``, ``variables/variables.*``);
* our own synthetic legacy model folder (the same layout as a released one).

Variables are named by their object-graph attribute paths (``LSTM1/forward_layer/cell/kernel``,
``res_block1/layer_with_weights-0/conv1/kernel``); optimizer state is not read. Every size (LSTM units,
conv filters, dense units) and the head count (2 or 4) come from the tensors' shapes; a config value that
says otherwise is an error naming both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.tf_checkpoint import read_layer_variables, resolve_checkpoint_prefix
from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.clair3.platform import TENSOR_FIELD, network_of, platform_of
from tf2lightning.run import Run

# The sizes a Clair3 network is built from, and their defaults (upstream's published widths) when no
# checkpoint is given.
DEFAULTS: dict[str, dict[str, Any]] = {
    "P": {"lstm1_units": 128, "lstm2_units": 160, "l4_units": 128, "l5_units": 128, "heads": 4},
    "F": {"conv_filters": [64, 128, 256], "l4_units": 256, "l5_units": 128, "heads": 4},
}
_INDEL_HEAD = "Y_indel_length_logits_1/kernel"


def checkpoint_prefix(path: str | Path, network: str) -> Path:
    """The TF checkpoint prefix of the ``network``'s model in ``path`` (see the module docstring)."""
    path = Path(path)
    kind = TENSOR_FIELD[network]
    if path.is_dir():
        if (path / f"{kind}.index").is_file():
            return path / kind
        if (path / "saved_model.pb").is_file() or (path / "checkpoint").is_file():
            return resolve_checkpoint_prefix(path)
        found = sorted(p.name for p in path.iterdir())
        raise FormatError(
            f"{path}: no {kind}.index (a released Clair3 model folder), saved_model.pb (a Train.py "
            f"SavedModel folder) or 'checkpoint' state file; found {found}"
        )
    if not path.exists() and Path(f"{path}.index").is_file():
        return path
    if path.exists():
        return resolve_checkpoint_prefix(path)
    raise FormatError(f"{path}: no such model folder or checkpoint prefix ({path}.index is missing)")


def read_checkpoint(path: str | Path, network: str) -> dict[str, np.ndarray]:
    """The model variables of the ``network``'s checkpoint in ``path``, keyed by attribute path."""
    prefix = checkpoint_prefix(path, network)
    variables = read_layer_variables(prefix, naming="graph")
    marker = "LSTM1/forward_layer/cell/kernel" if network == "P" else "conv1/conv/kernel"
    if marker not in variables:
        other = "F" if network == "P" else "P"
        hint = f" (it looks like a {other} network)" if _looks_like(variables, other) else ""
        raise FormatError(f"{prefix}.index: no variable {marker!r}, so not a Clair3 {network} model{hint}")
    return variables


def _looks_like(variables: dict[str, np.ndarray], network: str) -> bool:
    return ("LSTM1/forward_layer/cell/kernel" if network == "P" else "conv1/conv/kernel") in variables


def checkpoint_sizes(variables: dict[str, np.ndarray], network: str) -> dict[str, Any]:
    """The network sizes the tensors' shapes imply (the keys of ``DEFAULTS``)."""
    shape = {name: array.shape for name, array in variables.items()}
    sizes: dict[str, Any] = {
        "l4_units": shape["L4/kernel"][1],
        "l5_units": shape["L5_1/kernel"][1],
        "heads": 4 if _INDEL_HEAD in shape else 2,
    }
    if network == "P":
        sizes["lstm1_units"] = shape["LSTM1/forward_layer/cell/recurrent_kernel"][0]
        sizes["lstm2_units"] = shape["LSTM2/forward_layer/cell/recurrent_kernel"][0]
    else:
        sizes["conv_filters"] = [shape[f"{stage}/conv/kernel"][3] for stage in ("conv1", "conv3", "conv5")]
    return {key: sizes[key] for key in DEFAULTS[network]}


def network_sizes(run: Run, legacy: str | Path | None = None) -> dict[str, Any]:
    """The run's network sizes: from the checkpoint in ``legacy`` (default: the arch's ``legacy_model``)
    when there is one, else the arch config (defaults: the published widths). A configured value the
    checkpoint contradicts is a ConfigError naming both."""
    network = network_of(run)
    configured = {key: run.arch[key] for key in DEFAULTS[network] if run.arch.get(key) is not None}
    legacy = legacy or run.arch.get("legacy_model")
    if not legacy:
        return {**DEFAULTS[network], **configured}
    variables = read_checkpoint(legacy, network)
    sizes = checkpoint_sizes(variables, network)
    _check_geometry(run, variables, network, checkpoint_prefix(legacy, network))
    for key, value in configured.items():
        if list(np.atleast_1d(value)) != list(np.atleast_1d(sizes[key])):
            raise ConfigError(
                f"config key families.{run.family}.archs.{run.arch_name}.{key} is {value!r}, but the "
                f"checkpoint {checkpoint_prefix(legacy, network)} has {key} = {sizes[key]!r}; remove the "
                "key (sizes are read from the checkpoint) or point legacy_model at the right model"
            )
    return sizes


def _check_geometry(run: Run, variables: dict[str, np.ndarray], network: str, prefix: Path) -> None:
    """The dataset's tensor geometry (channels; pileup positions) must be the checkpoint's."""
    platform = platform_of(run)
    where = f"config key families.{run.family}.datasets.{run.dataset_name}"
    if network == "P":
        lstm2 = variables["LSTM2/forward_layer/cell/recurrent_kernel"].shape[0]
        found = {
            "pileup_channels": (
                platform.pileup_channels,
                variables["LSTM1/forward_layer/cell/kernel"].shape[0],
            ),
            "flanking": (platform.flanking, (variables["L4/kernel"].shape[0] // (2 * lstm2) - 1) // 2),
        }
    else:
        found = {"fa_channels": (platform.fa_channels, variables["conv1/conv/kernel"].shape[2])}
    for key, (configured, in_checkpoint) in found.items():
        if configured != in_checkpoint:
            raise ConfigError(
                f"{where}.{key} is {configured}, but the checkpoint {prefix} was made with "
                f"{key} = {in_checkpoint}"
            )
