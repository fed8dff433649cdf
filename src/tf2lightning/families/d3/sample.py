"""Family stage: sample sequences from the trained model, conditioned on held-out activities (torch only).

``samples.h5``: ``seq`` uint8 ``(L,)`` and ``condition`` float32 (the model's labels: ``(n_act,)``, or the
``(L, 1)`` signal track for promoter) per sample (the first ``n_eval`` rows of the evaluation split, in
order); attributes ``seconds`` (sampling wall time), ``steps``, ``predictor``, ``split``. Sampling is
upstream's: ``steps`` analytic steps (default: the sequence length) and the denoiser, Gumbel draws.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from tf2lightning.core.hdf5_store import Field, H5Writer, read_all, split_indices
from tf2lightning.families.d3.datasets import dataset_kind
from tf2lightning.families.d3.diffusion import sample
from tf2lightning.families.d3.training import diffusion_of
from tf2lightning.run import Run
from tf2lightning.stages.train import load_model


def evaluation_split(data_h5: Path) -> tuple[str, np.ndarray]:
    """``test``, or ``valid`` when the data has no test split (upstream needs only train and valid)."""
    splits = split_indices(data_h5)
    name = "test" if len(splits.get("test", [])) else "valid"
    return name, splits[name]


def test_conditions(run: Run, data_h5: Path) -> np.ndarray:
    """Labels of the first ``dataset.n_eval`` sequences of the evaluation split."""
    rows = evaluation_split(data_h5)[1][: int(run.dataset.get("n_eval", 64))]
    return read_all(data_h5, ("activity",))["activity"][rows]


def sample_sequences(run: Run, inputs: Mapping[str, Path], outputs: Mapping[str, Path]) -> None:
    """Inputs ``model`` (train/model.pt) and ``data``; output ``samples``."""
    torch.set_num_threads(run.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(run, inputs["model"])
    model = model.to(device)
    kind = dataset_kind(run)
    conditions = test_conditions(run, inputs["data"])
    steps = int(run.arch.get("sampling_steps") or kind.length)
    predictor = str(run.arch.get("predictor", "analytic"))
    batch_size = int(run.arch.get("sampling_batch_size", 64))
    generator = torch.Generator().manual_seed(run.seed)
    graph, noise = diffusion_of(run)
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
        "condition": Field(np.float32, conditions.shape[1:]),
    }
    split = evaluation_split(inputs["data"])[0]
    attrs = {"seconds": seconds, "steps": steps, "predictor": predictor, "split": split}
    with H5Writer(outputs["samples"], fields, attrs) as out:
        out.append({"seq": np.concatenate(chunks).astype(np.uint8), "condition": conditions})
