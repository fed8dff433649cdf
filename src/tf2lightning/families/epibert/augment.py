"""The pretraining augmentation on one example, in torch: shift, ATAC masking, reverse complement.

Equal to the TF pipeline (``tfdata.augment``) on the same :mod:`draws`, and to the source's
``deserialize_tr`` up to its random-number plumbing:

1. the sequence is ``stored[shift : shift + input_length]`` as codes A,C,G,T,N -> 0..4;
2. the ATAC input gets the noise draw; the target is its sum over ``tiling`` input bins per output bin,
   soft-clipped at 2,000 (``clip + sqrt(relu(x - 2000))``) and cropped by ``crop`` bins on each side;
3. the mask (1 = masked, per output bin) is one peak, chosen by rank with ``peak_u`` among the peak
   centres of the cropped window, widened to ``mask_bins`` bins, united with the blocks of ``mask_bins``
   bins whose ``block_u < atac_mask_dropout``; the crop edges are never masked by the block mask;
4. the masked ATAC input is zero under the mask (with ``mask_noise``: the input with its chunks of
   ``scramble_bins`` bins permuted by the ``scramble`` draw), ``log1p`` with ``log_atac``, then
   soft-clipped at 150;
5. with ``rev_comp`` the sequence is reversed and complemented (A<->T, C<->G, N stays) and the ATAC
   input, target and mask are reversed with it; without ``use_atac`` / ``use_seq`` the input is then
   replaced by the ``random_atac`` / ``random_codes`` draw (upstream's ablations);
6. motif activity is min-max scaled to [0, 1] (plus the ``motif_noise`` draw, training only), zeros
   without ``use_motif_activity``; a ``corrupt`` draw (upstream's ``atac_corrupt_rate``, training only)
   triples the block mask rate;
7. fine-tuning examples also get the expression target: the counts per token clipped at 65,500, square
   rooted, smoothed with the source's 3-tap Gaussian (zero-padded), cropped, and reversed with the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tf2lightning.families.epibert.geometry import RNA_CLIP, Geometry, rna_kernel

COMPLEMENT = torch.tensor([3, 2, 1, 0, 4])
CODE_OF_ASCII = np.full(256, 4, dtype=np.uint8)
for _code, _base in enumerate(b"ACGT"):
    CODE_OF_ASCII[_base] = CODE_OF_ASCII[_base + 32] = _code


def soft_clip(x: Tensor, limit: float) -> Tensor:
    """``clip(x, 0, limit) + sqrt(relu(x - limit))``, the source's clipping of inputs and targets."""
    return x.clamp(0.0, limit) + torch.sqrt(torch.relu(x - limit))


def mask_bins(peaks_center: Tensor, peak_u: float, block_u: Tensor, geo: Geometry, rate: float) -> Tensor:
    """The float32 mask over all ``n_tokens`` output bins (1 = masked)."""
    centres = torch.nonzero(peaks_center[geo.crop : geo.n_tokens - geo.crop] > 0).flatten()
    mask = torch.zeros(geo.n_tokens)
    if len(centres):
        rank = min(int(np.float32(peak_u) * np.float32(len(centres))), len(centres) - 1)
        start = int(centres[rank]) - geo.mask_bins // 2 + geo.crop
        stop = int(centres[rank]) + geo.mask_bins // 2 + geo.crop + 1
        mask[max(start, 0) : min(stop, geo.n_tokens)] = 1.0
    blocks = (block_u < rate).float().repeat_interleave(geo.mask_bins)
    mask[geo.crop : geo.n_tokens - geo.crop] = torch.maximum(mask[geo.crop : geo.n_tokens - geo.crop], blocks)
    return mask


def rna_target(rna: Tensor, geo: Geometry) -> Tensor:
    """Expression counts ``(n_tokens,)`` -> the cropped, smoothed ``sqrt`` target ``(output_length,)``."""
    x = torch.sqrt(rna.float().clamp(0.0, RNA_CLIP))
    kernel = torch.from_numpy(rna_kernel()).view(1, 1, -1)
    x = torch.nn.functional.conv1d(x.view(1, 1, -1), kernel, padding=kernel.shape[-1] // 2).view(-1)
    return x[geo.crop : geo.n_tokens - geo.crop]


def augment(
    example: Mapping[str, Any], draws: Mapping[str, Any], geo: Geometry, rate: float
) -> dict[str, Tensor]:
    """One example (codes, atac, peaks_center, motif_activity and optionally rna, as stored in ``data.h5``)
    -> model inputs.

    Returns ``sequence`` int64 codes (input_length,), ``atac`` float32 (atac_length,), ``mask`` float32
    and ``target`` float32 (output_length,), ``motif`` float32 (n_motifs,); with ``rna`` in the example
    also ``rna`` float32 (output_length,).
    """
    shift = int(draws["shift"])
    codes = torch.as_tensor(np.asarray(example["sequence"])[shift : shift + geo.input_length]).long()
    atac = torch.as_tensor(np.asarray(example["atac"], dtype=np.float32).reshape(-1))
    atac = atac + torch.as_tensor(np.asarray(draws["noise"], dtype=np.float32))
    target = soft_clip(atac.view(geo.n_tokens, geo.tiling).sum(1), 2000.0)[geo.crop : geo.n_tokens - geo.crop]
    block_u = torch.as_tensor(np.asarray(draws["block_u"], dtype=np.float32))
    rate = rate * (3.0 if int(draws.get("corrupt", 0)) else 1.0)  # upstream's corrupted examples
    mask = mask_bins(
        torch.as_tensor(np.asarray(example["peaks_center"])), float(draws["peak_u"]), block_u, geo, rate
    )
    tiled = mask.repeat_interleave(geo.tiling)
    masked = atac * (1.0 - tiled)
    if geo.mask_noise:  # upstream's mask_noise: masked bins show the profile with its chunks shuffled
        order = torch.as_tensor(np.asarray(draws["scramble"])).long()
        masked = masked + atac.view(geo.n_chunks, geo.scramble_bins)[order].view(-1) * tiled
    if geo.log_atac:
        masked = torch.log1p(masked)
    tracks = {
        "atac": soft_clip(masked, 150.0),
        "target": target,
        "mask": mask[geo.crop : geo.n_tokens - geo.crop],
    }
    if "rna" in example:
        tracks["rna"] = rna_target(torch.as_tensor(np.asarray(example["rna"])), geo)
    if int(draws["rev_comp"]):
        codes = COMPLEMENT[codes.flip(0)]
        tracks = {k: t.flip(0) for k, t in tracks.items()}
    if not geo.use_atac:  # upstream's ablations replace the input after the strand flip
        tracks["atac"] = torch.as_tensor(np.asarray(draws["random_atac"], dtype=np.float32))
    if not geo.use_seq:
        codes = torch.as_tensor(np.asarray(draws["random_codes"])).long()
    motif = torch.as_tensor(np.asarray(example["motif_activity"], dtype=np.float32))
    motif = (motif - motif.min()) / (motif.max() - motif.min())
    if "motif_noise" in draws:
        motif = motif + torch.as_tensor(np.asarray(draws["motif_noise"], dtype=np.float32))
    if not geo.use_motif_activity:
        motif = torch.zeros_like(motif)
    return {"sequence": codes, **tracks, "motif": motif}


def one_hot(codes: Tensor) -> Tensor:
    """Codes ``(..., L)`` -> float one-hot ``(..., L, 4)``; N (code 4) is all zeros."""
    return torch.nn.functional.one_hot(codes.long(), 5)[..., :4].float()
