"""The random numbers behind one example's augmentation, drawn once and fed to either pipeline (numpy only).

The TF pipeline (``tfdata.augment``) and the torch one (``augment.augment``) are pure functions of an
example and these draws, so the same draws give the same augmented example on both sides.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import numpy as np

from tf2lightning.families.epibert.geometry import Geometry

NOISE_MEAN = 1.0e-4  # the source adds |N(1e-4, 1e-4)| to the ATAC input (and so to the target)
NOISE_STD = 1.0e-4


class Draws(TypedDict):
    shift: int  # sequence offset in [0, max_shift), as upstream's parsers
    rev_comp: int  # 1: reverse-complement the sequence and flip ATAC, mask and target
    peak_u: float  # uniform in [0, 1): which peak (by rank) is masked
    block_u: np.ndarray  # float32 (n_blocks,): a block is masked where block_u < atac_mask_dropout
    noise: np.ndarray  # float32 (atac_length,): added to the ATAC profile
    corrupt: int  # 1: this example's blocks are masked at 3 x atac_mask_dropout (upstream's corrupt rate)
    motif_noise: np.ndarray  # float32 (n_motifs,): added to the scaled motif activity
    # drawn only when the geometry's switches ask for them (upstream's parse functions draw them in
    # training and validation alike):
    scramble: NotRequired[np.ndarray]  # int64 (n_chunks,): mask_noise's permutation of ATAC chunks
    random_atac: NotRequired[np.ndarray]  # float32 (atac_length,): the ATAC input without use_atac
    random_codes: NotRequired[np.ndarray]  # int64 (input_length,): codes 0..3, the sequence without use_seq


def draw(rng: np.random.Generator, geo: Geometry, training: bool = False) -> Draws:
    """One example's draws from ``rng``. Training draws add upstream's training-only randomness where the
    dataset asks for it: ``atac_corrupt_rate`` N (one example in N, drawn as an integer in [0, N) equal
    to 0, gets triple the block mask rate) and ``motif_noise`` (|N(0, std)| on the scaled motif activity);
    neither draws anything when off, so the other draws stay as they were."""
    drawn = Draws(
        shift=int(rng.integers(0, geo.n_shifts)),
        rev_comp=int(rng.integers(0, 2)),
        peak_u=float(rng.random(dtype=np.float32)),
        block_u=rng.random(geo.n_blocks, dtype=np.float32),
        noise=np.abs(rng.normal(NOISE_MEAN, NOISE_STD, geo.atac_length)).astype(np.float32),
        corrupt=0,
        motif_noise=np.zeros(geo.n_motifs, np.float32),
    )
    if training and geo.corrupt_rate:
        drawn["corrupt"] = int(rng.integers(0, geo.corrupt_rate) == 0)
    if training and geo.motif_noise:
        drawn["motif_noise"] = np.abs(rng.normal(0.0, geo.motif_noise, geo.n_motifs)).astype(np.float32)
    if geo.mask_noise:
        drawn["scramble"] = rng.permutation(geo.n_chunks)
    if not geo.use_atac:
        drawn["random_atac"] = rng.uniform(0.0, 150.0, geo.atac_length).astype(np.float32)
    if not geo.use_seq:
        drawn["random_codes"] = rng.integers(0, 4, geo.input_length)
    return drawn


def stack(draws: list[Draws]) -> dict[str, np.ndarray]:
    """Draws of several examples (of one geometry) as arrays with a leading example axis."""
    return {key: np.asarray([d[key] for d in draws]) for key in draws[0]}
