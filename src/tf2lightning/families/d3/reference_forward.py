"""Upstream's SEDD forward evaluated in NumPy (float64) straight from a checkpoint's tensors.

The reference side of parity for runs that bring no upstream outputs (the demo's plain-loop runs): it shares
no code with :mod:`model` (no ``nn.Module``, no torch op), so a port that agrees with it agrees for a reason.
It is checked against upstream's own outputs (``probe.npz``) on all six golden fixtures
(``tests/test_d3_upstream.py``).
"""

from __future__ import annotations

import math

import numpy as np

from tf2lightning.families.d3.model import CONV_DILATIONS, Shape

Arrays = dict[str, np.ndarray]
_erf = np.vectorize(math.erf)


def _linear(x: np.ndarray, p: Arrays, name: str) -> np.ndarray:
    y = x @ p[f"{name}.weight"].T
    return y + p[f"{name}.bias"] if f"{name}.bias" in p else y


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


def _layer_norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + 1e-5) * weight


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> np.ndarray:
    """'same' 1-D convolution of ``(B, C, L)`` with an odd kernel ``(out, in, k)``."""
    k, length = weight.shape[2], x.shape[2]
    pad = dilation * (k // 2)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    out = sum(
        np.einsum("oi,bil->bol", weight[:, :, j], padded[:, :, j * dilation : j * dilation + length])
        for j in range(k)
    )
    return out + bias[None, :, None]


def _sigma_embedding(p: Arrays, sigma: np.ndarray) -> np.ndarray:
    half = 128
    angles = sigma[:, None] * np.exp(-math.log(10000.0) * np.arange(half) / half)[None]
    features = np.concatenate([np.cos(angles), np.sin(angles)], -1)
    return _silu(_linear(_silu(_linear(features, p, "sigma_map.mlp.0")), p, "sigma_map.mlp.2"))


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return x * cos + np.concatenate([-x[..., half:], x[..., :half]], -1) * sin


def _attention(
    h: np.ndarray, p: Arrays, name: str, heads: int, cos: np.ndarray, sin: np.ndarray
) -> np.ndarray:
    batch, length, dim = h.shape
    qkv = (h @ p[f"{name}.attn_qkv.weight"].T).reshape(batch, length, 3, heads, dim // heads)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dim // heads)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    attended = (weights / weights.sum(-1, keepdims=True)) @ v
    return attended.transpose(0, 2, 1, 3).reshape(batch, length, dim) @ p[f"{name}.attn_out.weight"].T


def _transformer(
    shape: Shape, p: Arrays, x: np.ndarray, labels: np.ndarray, c: np.ndarray, blocks: Arrays
) -> np.ndarray:
    signal = _linear(labels, p, "vocab_embed.signal_embedding")
    h = p["vocab_embed.embedding"][x] + (signal if shape.per_position else signal[:, None, :])
    if shape.kmer_kernel > 1:
        conv = _conv1d(h.transpose(0, 2, 1), p["ours_kmer_conv.weight"], p["ours_kmer_conv.bias"])
        h = h + conv.transpose(0, 2, 1)
    angles = np.arange(x.shape[1])[:, None] * p["rotary_emb.inv_freq"][None]
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    for i in range(shape.n_blocks):
        name = f"blocks.{i}"
        mods = np.split(_linear(c, p, f"{name}.adaLN_modulation")[:, None], 6, axis=-1)
        normed = _layer_norm(h, p[f"{name}.norm1.weight"]) * (1 + mods[1]) + mods[0]
        h = h + mods[2] * _attention(normed, p, name, shape.n_heads, cos, sin)
        normed = _layer_norm(h, p[f"{name}.norm2.weight"]) * (1 + mods[4]) + mods[3]
        inner = _linear(normed, p, f"{name}.mlp.0")
        inner = 0.5 * inner * (1 + np.tanh(math.sqrt(2 / math.pi) * (inner + 0.044715 * inner**3)))
        h = h + mods[5] * _linear(inner, p, f"{name}.mlp.2")
        blocks[name] = h
    shift, scale = np.split(_linear(c, p, "output_layer.adaLN_modulation")[:, None], 2, axis=-1)
    out = _linear(
        _layer_norm(h, p["output_layer.norm_final.weight"]) * (1 + scale) + shift, p, "output_layer.linear"
    )
    np.put_along_axis(out, x[..., None], 0.0, axis=-1)
    return out


def _group_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    centred = x - x.mean((1, 2), keepdims=True)
    normed = centred / np.sqrt((centred**2).mean((1, 2), keepdims=True) + 1e-5)
    return normed * weight[None, :, None] + bias[None, :, None]


def _conv(
    shape: Shape, p: Arrays, x: np.ndarray, labels: np.ndarray, c: np.ndarray, blocks: Arrays
) -> np.ndarray:
    hot = np.eye(shape.n_tokens)[x]
    if shape.per_position:
        signal = labels
    else:
        signal = _linear(_silu(_linear(labels, p, "label_emb.0")), p, "label_emb.2")[:, :, None]
    inputs = np.concatenate([hot, signal], -1).transpose(0, 2, 1)
    out = _conv1d(inputs, p["linear.weight"], p["linear.bias"])
    out = out / (1 + np.exp(-out))
    for i, dilation in enumerate(CONV_DILATIONS):
        h = out + _linear(c, p, f"denses.{i}.dense")[:, :, None]
        h = _group_norm(h, p[f"norms.{i}.weight"], p[f"norms.{i}.bias"])
        h = _conv1d(h, p[f"conv_blocks.{i}.weight"], p[f"conv_blocks.{i}.bias"], dilation)
        blocks[f"conv_blocks.{i}"] = h
        out = out + h / (1 + np.exp(-h))
    hidden = _conv1d(out, p["final.0.weight"], p["final.0.bias"])
    hidden = 0.5 * hidden * (1 + _erf(hidden / math.sqrt(2)))
    return _conv1d(hidden, p["final.2.weight"], p["final.2.bias"]).transpose(0, 2, 1)


def log_score(
    shape: Shape,
    params: Arrays,
    x: np.ndarray,
    labels: np.ndarray,
    sigma: np.ndarray,
    blocks: Arrays | None = None,
) -> np.ndarray:
    """Upstream's ``score_fn(x, labels, sigma)`` (log-scores, eval mode) for a ``shape.backbone`` model;
    ``blocks``, when given, receives each block's output under its module path (``model.block_paths``)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    labels, sigma = np.asarray(labels, np.float64), np.asarray(sigma, np.float64)
    c = _sigma_embedding(p, sigma)
    body = _transformer if shape.backbone == "Tran" else _conv
    out = body(shape, p, np.asarray(x, np.int64), labels, c, {} if blocks is None else blocks)
    if shape.absorbing:  # ours: SEDD's scale by sigma for the mask graph
        out = out - np.log(np.expm1(sigma))[:, None, None] - math.log(shape.n_tokens - 1)
    return out
