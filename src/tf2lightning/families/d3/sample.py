"""Family stage: sample sequences from the trained model, conditioned on held-out activities (torch only).

``samples.h5``: ``seq`` uint8 ``(L,)`` and ``condition`` float32 ``(n_act,)`` per sample (the first
``n_eval`` test rows' activities, in order); attributes ``seconds`` (sampling wall time), ``steps``,
``predictor``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from tf2lightning.core.hdf5_store import Field, H5Writer, read_all, split_indices
from tf2lightning.families.d3.datasets import dataset_kind
from tf2lightning.families.d3.diffusion import LogLinearNoise, make_graph, sample
from tf2lightning.run import Run
from tf2lightning.stages.train import load_model


def test_conditions(run: Run, data_h5: Path) -> np.ndarray:
    """Activities of the first ``dataset.n_eval`` test sequences."""
    test = split_indices(data_h5)["test"][: int(run.dataset.get("n_eval", 64))]
    return read_all(data_h5, ("activity",))["activity"][test]


def sample_sequences(run: Run, inputs: Mapping[str, Path], outputs: Mapping[str, Path]) -> None:
    """Inputs ``model`` (train/model.pt) and ``data``; output ``samples``."""
    torch.set_num_threads(run.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(run, inputs["model"])
    model = model.to(device)
    kind = dataset_kind(run)
    conditions = test_conditions(run, inputs["data"])
    steps = int(run.arch.get("sampling_steps", 64))
    predictor = str(run.arch.get("predictor", "analytic"))
    batch_size = int(run.arch.get("sampling_batch_size", 64))
    generator = torch.Generator().manual_seed(run.seed)
    graph, noise = (
        make_graph(str(run.arch.get("graph", "absorbing"))),
        LogLinearNoise(float(run.arch.get("noise_eps", 1e-3))),
    )
    start = time.perf_counter()
    chunks = [
        sample(
            model,
            graph,
            noise,
            torch.from_numpy(conditions[i : i + batch_size]).to(device),
            kind.length,
            steps,
            predictor,
            generator,
        )
        .cpu()
        .numpy()
        for i in range(0, len(conditions), batch_size)
    ]
    seconds = time.perf_counter() - start
    fields = {
        "seq": Field(np.uint8, (kind.length,), "bitshuffle-lz4"),
        "condition": Field(np.float32, (len(kind.activities),)),
    }
    attrs = {"seconds": seconds, "steps": steps, "predictor": predictor}
    with H5Writer(outputs["samples"], fields, attrs) as out:
        out.append({"seq": np.concatenate(chunks).astype(np.uint8), "condition": conditions})
