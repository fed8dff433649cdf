"""Synthetic regulatory sequences with a learnable grammar (numpy only).

Each activity ``j`` has one planted motif. A sequence gets ``c_j`` copies of motif ``j``
(``c_j`` uniform in ``0..kind.max_count``) at random non-overlapping positions of an i.i.d. uniform
background, each copy forward with chance ``kind.forward_fraction``, else reverse-complemented. The
activity is::

    y_j = sum over copies (1.0 if forward else 0.5) + SPACING_BONUS * [two copies within SPACING bp] + noise

so counts, orientation and spacing all matter, and a sequence without motifs (random or shuffled DNA)
has activity about 0. Sequences are uint8 codes A,C,G,T -> 0..3. Everything is drawn from the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf2lightning.families.d3.datasets import NUCLEOTIDES, DatasetKind

FORWARD_WEIGHT = 1.0
REVERSE_WEIGHT = 0.5
SPACING = 20
SPACING_BONUS = 0.5
NOISE_SD = 0.05
_COMPLEMENT = np.array([3, 2, 1, 0], dtype=np.uint8)


def encode(text: str) -> np.ndarray:
    """A DNA string -> uint8 codes (A,C,G,T -> 0..3)."""
    return np.array([NUCLEOTIDES.index(c) for c in text], dtype=np.uint8)


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of uint8 codes along the last axis."""
    return _COMPLEMENT[codes[..., ::-1]]


@dataclass(frozen=True)
class Planted:
    """The sequences, their activities ``(N, n_act)`` and each copy's (row, activity, start, forward)."""

    seqs: np.ndarray
    activity: np.ndarray
    copies: list[tuple[int, int, int, bool]]


def _free_start(occupied: np.ndarray, width: int, rng: np.random.Generator) -> int:
    """A random start whose ``width`` positions are all free (there is always room: few, short motifs)."""
    while True:
        start = int(rng.integers(0, len(occupied) - width + 1))
        if not occupied[start : start + width].any():
            return start


def generate(kind: DatasetKind, n: int, rng: np.random.Generator) -> Planted:
    """Draw ``n`` sequences of ``kind.length`` with planted motifs and their activities."""
    motifs = [encode(m) for m in kind.motifs]
    seqs = rng.integers(0, 4, size=(n, kind.length), dtype=np.uint8)
    activity = np.zeros((n, len(motifs)), dtype=np.float64)
    copies: list[tuple[int, int, int, bool]] = []
    for row in range(n):
        occupied = np.zeros(kind.length, dtype=bool)
        for j, motif in enumerate(motifs):
            starts = []
            for _ in range(int(rng.integers(0, kind.max_count + 1))):
                start = _free_start(occupied, len(motif), rng)
                forward = bool(rng.random() < kind.forward_fraction)
                seqs[row, start : start + len(motif)] = motif if forward else reverse_complement(motif)
                occupied[start : start + len(motif)] = True
                activity[row, j] += FORWARD_WEIGHT if forward else REVERSE_WEIGHT
                starts.append(start)
                copies.append((row, j, start, forward))
            gaps = np.diff(np.sort(starts))
            if len(gaps) and gaps.min() <= SPACING:
                activity[row, j] += SPACING_BONUS
    activity += rng.normal(0.0, NOISE_SD, size=activity.shape)
    return Planted(seqs, activity.astype(np.float32), copies)


def signal_track(kind: DatasetKind, planted: Planted, width: float = 8.0) -> np.ndarray:
    """A per-position expression signal ``(N, L)`` whose sum over positions is the activity.

    Each copy adds a Gaussian bump at its centre carrying its weight; the spacing bonus and the noise are
    spread evenly, so ``track.sum(1) == activity[:, 0]`` (up to float rounding).
    """
    n, length = planted.seqs.shape
    positions = np.arange(length, dtype=np.float64)
    track = np.zeros((n, length), dtype=np.float64)
    for row, j, start, forward in planted.copies:
        centre = start + len(kind.motifs[j]) / 2
        bump = np.exp(-0.5 * ((positions - centre) / width) ** 2)
        track[row] += (FORWARD_WEIGHT if forward else REVERSE_WEIGHT) * bump / bump.sum()
    rest = planted.activity[:, 0].astype(np.float64) - track.sum(1)
    track += rest[:, None] / length
    return track.astype(np.float32)
