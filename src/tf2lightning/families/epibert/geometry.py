"""Sizes of one EpiBERT configuration, derived once from the run (numpy only, no framework).

The DNA branch halves the length ``1 + len(filter_list_seq)`` times (stem and tower SoftmaxPooling); the
ATAC branch starts at ``atac_bin`` bp per bin, halves once (stem max-pool) and divides by ``atac_pool`` per
tower block. Both must land on the same number of tokens (4,096 for the published 524,288 bp input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf2lightning.errors import ConfigError
from tf2lightning.run import Run


@dataclass(frozen=True)
class Geometry:
    """Lengths of inputs, tokens and targets, and the masking layout."""

    input_length: int  # bp fed to the model
    max_shift: int  # the random shift is in [0, max_shift); upstream stores 2 x max_shift extra bp
    atac_bin: int  # bp per ATAC input bin
    n_tokens: int  # transformer tokens (= uncropped output bins)
    crop: int  # output bins cropped on each side
    mask_bins: int  # output bins per masked block
    n_motifs: int
    corrupt_rate: int | None = None  # upstream's atac_corrupt_rate (training draws)
    motif_noise: float = 0.0  # std of upstream's |N(0, std)| on the scaled motif activity (training)
    mask_noise: bool = (
        False  # upstream's mask_noise: masked ATAC bins get a chunk-shuffled copy of the profile
    )
    log_atac: bool = False  # upstream's log_atac: log1p of the masked ATAC input before clipping
    use_atac: bool = True  # False: the ATAC input is uniform noise in [0, 150) (upstream's ablation)
    use_seq: bool = True  # False: the sequence is uniform random bases (upstream's ablation)
    use_motif_activity: bool = True  # False: motif activity is zeros (upstream's ablation)
    scramble_bins: int = 512  # ATAC bins per chunk that mask_noise shuffles (upstream: 512)

    @property
    def atac_length(self) -> int:
        return self.input_length // self.atac_bin

    @property
    def stored_length(self) -> int:
        """bp per stored example: upstream's writers store ``input_length + 2 * shift``."""
        return self.input_length + 2 * self.max_shift

    @property
    def n_shifts(self) -> int:
        """Offsets drawn: ``[0, max_shift)`` as upstream's parsers (one, 0, when ``max_shift`` is 0)."""
        return max(self.max_shift, 1)

    @property
    def n_chunks(self) -> int:
        """Chunks of ``scramble_bins`` ATAC bins that ``mask_noise`` permutes."""
        return self.atac_length // self.scramble_bins

    @property
    def tiling(self) -> int:
        """ATAC input bins summed into one output bin."""
        return self.atac_length // self.n_tokens

    @property
    def output_res(self) -> int:
        return self.input_length // self.n_tokens

    @property
    def output_length(self) -> int:
        return self.n_tokens - 2 * self.crop

    @property
    def n_blocks(self) -> int:
        """Blocks of ``mask_bins`` output bins that the random mask drops or keeps."""
        return self.output_length // self.mask_bins


SWITCHES = {  # upstream's parse-function switches as dataset keys, valued as its published scripts pass them
    "mask_noise": False,
    "log_atac": False,
    "use_atac": True,
    "use_seq": True,
    "use_motif_activity": True,
}


def cell_type(run: Run) -> str:
    """The records' cell type (``<split>/<cell type>.tfr``): the dataset's ``cell_type``, else its name."""
    return str(run.dataset.get("cell_type") or run.dataset_name)


def mask_rate(run: Run) -> float:
    """The dataset's ``atac_mask_dropout``: the chance that a block of ATAC bins is masked."""
    return float(run.dataset["atac_mask_dropout"])


def geometry(run: Run) -> Geometry:
    """The geometry of ``run``; inconsistent sizes are a ConfigError naming the keys.

    The dataset fixes ``input_length`` and ``output_res`` (bp per token); an architecture, when the run has
    one, must reduce both branches to exactly ``input_length // output_res`` tokens.
    """
    data, arch = run.dataset, run.arch
    where = f"families.{run.family}.datasets.{run.dataset_name}"
    input_length, output_res = int(data["input_length"]), int(data["output_res"])
    if input_length % output_res or input_length % int(data["atac_bin"]):
        raise ConfigError(
            f"{where}: input_length {input_length} must be a multiple of output_res and atac_bin"
        )
    n_tokens = input_length // output_res
    if arch:
        dna = input_length // 2 ** (1 + len(arch["filter_list_seq"]))
        atac = (
            input_length
            // int(data["atac_bin"])
            // 2
            // int(arch["atac_pool"]) ** len(arch["filter_list_atac"])
        )
        if dna != n_tokens or atac != n_tokens:
            raise ConfigError(
                f"families.{run.family}.archs.{run.arch_name}: the DNA tower gives {dna} tokens and the ATAC "
                f"tower {atac}, but {where} needs {n_tokens} (input_length / output_res)"
            )
    geo = Geometry(
        input_length=input_length,
        max_shift=int(data["max_shift"]),
        atac_bin=int(data["atac_bin"]),
        n_tokens=n_tokens,
        crop=int(data["crop"]),
        mask_bins=int(data["mask_size"]) // output_res,
        n_motifs=int(data["n_motifs"]),
        corrupt_rate=None if data.get("atac_corrupt_rate") is None else int(data["atac_corrupt_rate"]),
        motif_noise=float(data.get("motif_noise") or 0.0),
        **{key: bool(data.get(key, default)) for key, default in SWITCHES.items()},
    )
    if geo.mask_noise and geo.atac_length % geo.scramble_bins:
        raise ConfigError(
            f"{where}: mask_noise shuffles chunks of {geo.scramble_bins} ATAC bins, which must divide the "
            f"{geo.atac_length} bins of input_length / atac_bin"
        )
    if geo.mask_bins < 1 or geo.output_length % geo.mask_bins:
        raise ConfigError(
            f"{where}: mask_size {data['mask_size']} bp must be a whole number of {output_res} bp bins "
            f"dividing the {geo.output_length} cropped bins"
        )
    return geo


def rotary_table(n_tokens: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sin, cos)`` float32 ``(n_tokens, head_dim)`` of the source's rotary embedding, interleaved.

    Frequencies ``1 / 10000**(2i / head_dim)``; each is repeated for the adjacent pair ``(2i, 2i + 1)``
    (the source's ``repeat(t, 'b n -> b (n j)', j=2)``). Computed once in float64, shared by both sides.
    """
    inv_freq = 1.0 / 10000 ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(n_tokens, dtype=np.float64), inv_freq)
    sin = np.repeat(np.sin(angles), 2, axis=1).astype(np.float32)
    cos = np.repeat(np.cos(angles), 2, axis=1).astype(np.float32)
    return sin, cos


RNA_CLIP = 65500.0  # the source clips expression counts at (about) the float16 maximum before the sqrt


def rna_kernel(size: int = 3, std: float = 1.0) -> np.ndarray:
    """The source's Gaussian smoothing of the expression target (``gaussian_kernel(3, 1)``), float32,
    normalised to sum 1; both sides convolve the uncropped ``sqrt`` profile with it, zero-padded ('SAME')."""
    offsets = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2 * std * std))
    return (weights / weights.sum()).astype(np.float32)
