"""Parity stage (torch): the port, loaded with each converted weight file, against the legacy reference."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from tf2lightning.core.parity import capture_activations, compare, parity_table, write_parity_tsv
from tf2lightning.core.reference_file import read_reference
from tf2lightning.errors import ParityError
from tf2lightning.families import family_module
from tf2lightning.run import Run
from tf2lightning.stages.weights import load_port

log = logging.getLogger(__name__)


def check_parity(
    run: Run, reference_h5: str | Path, weights: Sequence[str | Path], out_tsv: str | Path
) -> None:
    """Compare outputs and every mapped layer for each weight source; write ``parity.tsv``; fail if an
    output or a layer is over tolerance (Snakemake then removes the table, so a failure copies it into
    the log).

    The family's model module provides ``PARITY_LAYERS`` (legacy layer -> torch module path and layout;
    or ``parity_layers(run)`` where the layer set depends on the config),
    ``PARITY_OUTPUTS`` (legacy output name -> function of the port's output; or ``parity_outputs(run)``
    where the outputs depend on the config) and optionally
    ``parity_inputs(reference_inputs) -> tuple`` (default: the reference inputs in order) and
    ``parity_failure_hint(run, reference) -> str`` (what a failure likely means, added to the error).
    """
    torch.set_num_threads(run.threads)
    model_module = family_module(run.family, "model")
    reference = read_reference(reference_h5)
    layers = getattr(model_module, "parity_layers", lambda run: model_module.PARITY_LAYERS)(run)
    table = parity_table(layers)
    make_inputs = getattr(model_module, "parity_inputs", lambda arrays: tuple(arrays.values()))
    output_table = getattr(model_module, "parity_outputs", lambda run: model_module.PARITY_OUTPUTS)(run)
    atol = float(run.parity.get("atol", 1e-5))
    rtol = float(run.parity.get("rtol", 0.0))
    reports = {}
    for path in map(Path, weights):
        model = load_port(run, path)
        outputs, activations = capture_activations(
            model, {k: v.torch_path for k, v in table.items()}, make_inputs(reference.inputs)
        )
        named = {name: fn(outputs) for name, fn in output_table.items()}
        report = compare(reference, named, activations, table, atol=atol, rtol=rtol)
        reports[path.stem] = report
        log.info("%s: %s", path.stem, report.summary())
    write_parity_tsv(out_tsv, reports)
    for source, report in reports.items():
        if not (report.ok and report.layers_ok):
            log.error("parity failed for weights %s:\n%s", source, Path(out_tsv).read_text())
            hint = getattr(model_module, "parity_failure_hint", lambda run, reference: "")(run, reference)
            try:
                report.raise_for_failures()
            except ParityError as error:
                raise ParityError(f"{error}. {hint}" if hint else str(error)) from None
