"""Synthetic, learnable EpiBERT examples: ATAC signal driven by planted motifs and their peaks (numpy only).

Each example is a random DNA window (``stored_length`` bp, GC 42 %) in which motif sites are planted;
a site of motif ``j`` opens chromatin with strength ``activity[j]`` (the cell type's motif activity), which
shows as a Gaussian bump of ATAC counts (4 bp bins) over a low background, and a peak (``peaks``: tokens
the bump covers, ``peaks_center``: the token of its centre) where the bump is strong enough.

The fine-tuning target ``rna`` (counts per token, RAMPAGE-like) comes from the same sites: a site of a
promoter-like motif (``EXPRESSION`` gain > 0) starts transcription at its token with a rate proportional to
its gain and to the activity that opens it, so expression needs the sequence (which motif) and the
accessibility. Its Poisson draws use a generator of their own, so the ATAC data are those of a run
without expression.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tf2lightning.families.epibert.geometry import Geometry

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
MOTIFS = ("TGACTCA", "CCGCCCGG", "GATAAG", "CACGTG", "TTGCGCAA", "GGAATTCC", "CCACCAGGGGGC", "AATAAA")
COMPLEMENT = bytes.maketrans(b"ACGT", b"TGCA")
BACKGROUND = 0.05  # ATAC counts per 4 bp bin away from sites
PEAK_THRESHOLD = 0.25  # minimum activity of a site that is called a peak
SITES_PER_KB = 0.8
EXPRESSION = (1.0, 0.0, 0.6, 0.0, 1.0, 0.0, 0.3, 0.0)  # per motif: expression gain of its sites
RNA_SCALE = 40.0  # expected RNA counts at a site of gain 1 and activity 1
RNA_BACKGROUND = 0.05  # expected RNA counts per token away from sites


@dataclass(frozen=True)
class Example:
    sequence: bytes  # ASCII, stored_length
    atac: np.ndarray  # float16 (atac_length, 1)
    peaks: np.ndarray  # int32 (n_tokens,)
    peaks_center: np.ndarray  # int32 (n_tokens,)
    motif_activity: np.ndarray  # float16 (n_motifs,)
    interval: bytes
    rna: np.ndarray  # float16 (n_tokens, 1): expression counts per token (the fine-tuning target)

    def tensors(self) -> dict[str, np.ndarray]:
        """The serialized-tensor features with upstream's pretraining writer's dtypes (float16, int32)."""
        return {
            "atac": self.atac.astype(np.float16),
            "peaks": self.peaks.astype(np.int32),
            "peaks_center": self.peaks_center.astype(np.int32),
            "motif_activity": self.motif_activity.astype(np.float16),
            "rna": self.rna.astype(np.float16),
        }


def cell_type_activity(cell_type: str, n_motifs: int) -> np.ndarray:
    """The fixed motif activity profile of a cell type (float32 in [0, 1]), seeded by its name."""
    rng = np.random.default_rng(zlib.crc32(cell_type.encode()))
    return rng.uniform(0.0, 1.0, n_motifs).astype(np.float32)


def generate(rng: np.random.Generator, geo: Geometry, cell_type: str, n: int, split: str) -> list[Example]:
    """``n`` examples of one cell type; a split gets its own chromosome name in ``interval``."""
    activity = cell_type_activity(cell_type, geo.n_motifs)
    n_planted = min(len(MOTIFS), geo.n_motifs)
    bins = np.arange(geo.atac_length) * geo.atac_bin + geo.atac_bin / 2
    out = []
    for index in range(n):
        seq = rng.choice(BASES, geo.stored_length, p=[0.29, 0.21, 0.21, 0.29])
        lam = np.full(geo.atac_length, BACKGROUND)
        peaks = np.zeros(geo.n_tokens, np.int32)
        centers = np.zeros(geo.n_tokens, np.int32)
        rna = np.full(geo.n_tokens, RNA_BACKGROUND)
        n_sites = rng.poisson(SITES_PER_KB * geo.input_length / 1000) + 1
        for _ in range(n_sites):
            j = int(rng.integers(n_planted))
            site = MOTIFS[j].encode()
            if rng.random() < 0.5:  # either strand
                site = site[::-1].translate(COMPLEMENT)
            pos = int(rng.integers(0, geo.input_length - len(site)))
            seq[pos : pos + len(site)] = np.frombuffer(site, np.uint8)
            centre = pos + len(site) / 2
            width = 60.0 + 40.0 * rng.random()
            lam += 6.0 * activity[j] * np.exp(-(((bins - centre) / width) ** 2))
            if activity[j] >= PEAK_THRESHOLD:
                first, last = int(max(centre - width, 0)), int(min(centre + width, geo.input_length - 1))
                peaks[first // geo.output_res : last // geo.output_res + 1] = 1
                centers[int(centre) // geo.output_res] = 1
            rna[int(centre) // geo.output_res] += RNA_SCALE * EXPRESSION[j] * activity[j]
        atac = rng.poisson(lam).astype(np.float16)[:, None]
        jitter = rng.normal(0.0, 0.02, geo.n_motifs).astype(np.float32)
        start = int(rng.integers(0, 10**8))
        rna_counts = np.random.default_rng((start, index)).poisson(rna)
        out.append(
            Example(
                sequence=seq.tobytes(),
                atac=atac,
                peaks=peaks,
                peaks_center=centers,
                motif_activity=(activity + jitter).astype(np.float16),
                interval=f"chr{split}_{index}:{start}-{start + geo.stored_length}".encode(),
                rna=rna_counts.astype(np.float16)[:, None],
            )
        )
    return out
