"""The tabular classifiers' forward pass written again in numpy (float64), from a ``model_state_dict``.

This is the reference the port is held to: it reads the legacy checkpoint's tensors by name and computes
the parity layers (``backbone.0``, ``backbone``, ``head``, ``probs``) without :mod:`model` or torch
modules, so a mistake in the port (a swapped GEGLU half, a LayerNorm epsilon, the attention scale, the head
split) shows in ``parity.tsv`` instead of being copied into the reference. Dropout is off (inference).

Math, per architecture (``W x + b`` is a ``Linear`` with torch's ``(out, in)`` weight):

- MLP: each block ``act(W x + b)``; GEGLU is ``a * gelu(g)`` of the first/second halves; the head is linear.
- Transformer: token ``j = x_j W_j + b_j`` after a CLS token; per block
  ``x += out(attn(LN1 x))`` (q, k, v from one ``(3d, d)`` projection split q|k|v then into heads,
  ``softmax(q k^T / sqrt(d / heads)) v``) and ``x += W2 geglu(W1 LN2 x)``; then ``relu(LN(x_cls))``
  and the linear head. LayerNorm: ``(x - mean) / sqrt(var + 1e-5) * w + b`` (biased variance).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import erf

LAYER_NORM_EPS = 1e-5  # torch's default, which the plain model uses

Arrays = Mapping[str, np.ndarray]


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU."""
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0)
    if name == "gelu":
        return gelu(x)
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name == "geglu":
        half = x.shape[-1] // 2
        return x[..., :half] * gelu(x[..., half:])
    raise ValueError(f"unknown activation {name!r}")


def linear(state: Arrays, prefix: str, x: np.ndarray) -> np.ndarray:
    return x @ state[f"{prefix}.weight"].T + state[f"{prefix}.bias"]


def layer_norm(state: Arrays, prefix: str, x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(-1, keepdims=True)
    scaled = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + LAYER_NORM_EPS)
    return scaled * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(state: Arrays, prefix: str, x: np.ndarray, heads: int) -> np.ndarray:
    n, t, d = x.shape
    qkv = linear(state, f"{prefix}.qkv", x).reshape(n, t, 3, heads, d // heads)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (n, heads, t, d / heads)
    weights = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads))
    mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return linear(state, f"{prefix}.out", mixed)


def mlp_stages(state: Arrays, arch: Mapping[str, object], x: np.ndarray) -> list[np.ndarray]:
    """The output of every backbone block."""
    stages, i = [], 0
    while f"backbone.{i}.0.weight" in state:
        x = activation(str(arch["activation"]), linear(state, f"backbone.{i}.0", x))
        stages.append(x)
        i += 1
    return stages


def transformer_stages(state: Arrays, arch: Mapping[str, object], x: np.ndarray) -> list[np.ndarray]:
    """Tokens, then the output of every block, then the pooled CLS token."""
    heads = int(str(arch["heads"]))
    tokens = x[..., None] * state["backbone.0.weight"] + state["backbone.0.bias"]
    cls = np.broadcast_to(state["backbone.0.cls"], (len(x), 1, tokens.shape[-1]))
    h = np.concatenate([cls, tokens], axis=1)
    stages, i = [h], 1  # backbone.0 is the tokenizer, then the blocks, then the pooling
    while f"backbone.{i}.norm1.weight" in state:
        p = f"backbone.{i}"
        h = h + attention(state, f"{p}.attention", layer_norm(state, f"{p}.norm1", h), heads)
        hidden = activation("geglu", linear(state, f"{p}.ffn.0", layer_norm(state, f"{p}.norm2", h)))
        h = h + linear(state, f"{p}.ffn.3", hidden)
        stages.append(h)
        i += 1
    return [*stages, np.maximum(layer_norm(state, f"backbone.{i}.norm", h[:, 0]), 0)]


def forward(state: Arrays, arch: Mapping[str, object], x: np.ndarray) -> dict[str, np.ndarray]:
    """The parity layers of ``arch["kind"]`` on standardized rows ``x (N, F)``, in float64."""
    state = {k: np.asarray(v, np.float64) for k, v in state.items()}
    x = np.asarray(x, np.float64)
    stages = (mlp_stages if arch["kind"] == "mlp" else transformer_stages)(state, arch, x)
    logits = linear(state, "head", stages[-1])
    return {"backbone.0": stages[0], "backbone": stages[-1], "head": logits, "probs": softmax(logits)}
