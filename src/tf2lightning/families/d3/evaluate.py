"""D3 evaluation: oracle MSE of designed sequences against random and shuffled baselines, k-mer spectra.

Sets: the diffusion samples, uniform random DNA, each real sequence shuffled (its nucleotides permuted, so
composition is kept and motifs are destroyed) and the real sequences themselves (the evaluation split:
test, or valid when the data has none; ``eval_split_is_test`` says which). ``sp_mse_<set>`` is upstream's
metric (``run_sample.py``): ``mean((oracle(real) - oracle(set))**2)`` over sequences and outputs, 0 for a
perfect generator. ``mse_<set>`` scores the oracle's predictions against the conditioning activities.
``kmer<k>_distance_<set>`` is the L1 distance between the normalised k-mer
spectra of a set and of the real test sequences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from tf2lightning.core.hdf5_store import read_all, read_attrs
from tf2lightning.families.d3.datasets import activity_of, dataset_kind
from tf2lightning.families.d3.oracle import load_oracle, predict
from tf2lightning.families.d3.sample import evaluation_split
from tf2lightning.run import Run

KMER_SIZES = (3, 6)


def kmer_spectrum(codes: np.ndarray, k: int) -> np.ndarray:
    """Normalised counts of the ``4**k`` k-mers over all sequences."""
    windows = np.lib.stride_tricks.sliding_window_view(codes.astype(np.int64), k, axis=1)
    index = (windows * (4 ** np.arange(k - 1, -1, -1))).sum(-1)
    counts = np.bincount(index.ravel(), minlength=4**k).astype(np.float64)
    return counts / counts.sum()


def shuffle_rows(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.permuted(codes, axis=1)


def evaluate(run: Run, model: nn.Module, h5: Path, oracle: Path, samples: Path) -> dict[str, float]:
    """Metrics of the samples in ``samples`` (made from ``model``) against the test split of ``h5``."""
    del model  # the samples come from it (sample stage)
    rng = np.random.default_rng(run.seed + 1)
    designed = read_all(samples, ("seq", "condition"))
    conditions = activity_of(dataset_kind(run), designed["condition"])
    n = len(conditions)
    split, rows = evaluation_split(h5)
    real = read_all(h5, ("seq",))["seq"][rows[:n]]
    sets = {
        "diffusion": designed["seq"],
        "random": rng.integers(0, 4, designed["seq"].shape).astype(np.uint8),
        "shuffled": shuffle_rows(real, rng),
        "real": real,
    }
    net, pearson, columns = load_oracle(oracle)
    conditions = conditions[:, columns]
    metrics: dict[str, float] = {"n_samples": float(n), "eval_split_is_test": float(split == "test")}
    on_real = predict(net, real)
    for name, codes in sets.items():
        predicted = predict(net, codes)
        metrics[f"mse_{name}"] = float(np.mean((predicted - conditions) ** 2))
        metrics[f"sp_mse_{name}"] = float(np.mean((on_real - predicted) ** 2))
    metrics["mse_ratio_diffusion_to_random"] = metrics["mse_diffusion"] / metrics["mse_random"]
    for baseline in ("random", "shuffled"):
        metrics[f"sp_mse_ratio_diffusion_to_{baseline}"] = (
            metrics["sp_mse_diffusion"] / metrics[f"sp_mse_{baseline}"]
        )
    for k in KMER_SIZES:
        reference = kmer_spectrum(real, k)
        for name in ("diffusion", "random", "shuffled"):
            distance = np.abs(kmer_spectrum(sets[name], k) - reference).sum()
            metrics[f"kmer{k}_distance_{name}"] = float(distance)
    seconds = float(read_attrs(samples)["seconds"])
    metrics["sampling_seconds"] = seconds
    metrics["sequences_per_second"] = n / seconds
    metrics["sampling_steps"] = float(read_attrs(samples)["steps"])
    metrics.update({f"oracle_test_pearson_r_{i}": r for i, r in enumerate(pearson)})
    return metrics
