"""The Performer's random-feature matrix, drawn as upstream draws it, in numpy (no framework).

Upstream (``snnk_attention.create_projection_matrix(m, d, seed)``, scaling 0) stacks the transposed Q
factors of ``d x d`` standard-normal blocks drawn with ``tf.random.stateless_normal(seed=[seed + b, 2])``
(a remainder block, if any, with ``[seed + nb, 5]``, first rows), then scales row ``i`` by the norm of row
``i`` of a ``(m, d)`` draw with ``[seed + nb + 4, 6]``. The matrix is not stored in checkpoints: every
layer rebuilds it from the seed. :func:`stateless_normal` reproduces TensorFlow's CPU kernel (Philox
4x32-10 keyed by the scrambled seed, Box-Muller on pairs of uint32); the QR is Householder, as TF's, in
float64. The result equals upstream's matrix to float32 rounding (tests/test_epibert_performer.py checks
the fixture's ``aux_projection_matrix``).
"""

from __future__ import annotations

import numpy as np

NB_RANDOM_FEATURES = 256
# relu_kernel_transformation's default stabilizer: upstream's Attention calls the kernel without passing
# its ``numerical_stabilizer`` argument, so the constructor's 1e-7 never reaches it.
KERNEL_STABILIZER = 1e-3

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox 4x32-10 of ``counters`` ``(n, 4)`` uint32 under ``key`` -> ``(n, 4)`` uint32."""
    c = counters.astype(np.uint32).copy()
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    for round_ in range(10):
        if round_:
            k0, k1 = (
                np.uint32((int(k0) + int(_W0)) & 0xFFFFFFFF),
                np.uint32((int(k1) + int(_W1)) & 0xFFFFFFFF),
            )
        p0 = _M0 * c[:, 0].astype(np.uint64)
        p1 = _M1 * c[:, 2].astype(np.uint64)
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _MASK32).astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _MASK32).astype(np.uint32)
        c = np.stack([hi1 ^ c[:, 1] ^ k0, lo1, hi0 ^ c[:, 3] ^ k1, lo0], axis=1)
    return c


def _key_counter(seed: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """TF's ``GenerateKey``: one Philox call on the seed under a fixed key scrambles it."""
    s0, s1 = (int(s) & 0xFFFFFFFFFFFFFFFF for s in seed)
    start = np.array([[s0 & 0xFFFFFFFF, s0 >> 32, s1 & 0xFFFFFFFF, s1 >> 32]], dtype=np.uint32)
    mix = philox4x32(start, (0x3EC8F720, 0x02461E29))[0]
    return (int(mix[0]), int(mix[1])), (0, 0, int(mix[2]), int(mix[3]))


def _uniform01(bits: np.ndarray) -> np.ndarray:
    """TF's ``Uint32ToFloat``: 23 mantissa bits as a float32 in [0, 1)."""
    return ((bits & np.uint32(0x7FFFFF)) | np.uint32(127 << 23)).view(np.float32) - np.float32(1.0)


def stateless_normal(shape: tuple[int, ...], seed: tuple[int, int]) -> np.ndarray:
    """``tf.random.stateless_normal(shape, seed, dtype=float32)`` on CPU, in numpy."""
    size = int(np.prod(shape))
    key, (c0, c1, c2, c3) = _key_counter(seed)
    n_groups = -(-size // 4)
    low = np.uint64(c0 | (c1 << 32)) + np.arange(n_groups, dtype=np.uint64)  # no carry for small draws
    counters = np.stack(
        [
            (low & _MASK32).astype(np.uint32),
            (low >> np.uint64(32)).astype(np.uint32),
            np.full(n_groups, c2, np.uint32),
            np.full(n_groups, c3, np.uint32),
        ],
        axis=1,
    )
    bits = philox4x32(counters, key).reshape(-1, 2)
    u1 = np.maximum(_uniform01(bits[:, 0]), np.float32(1e-7)).astype(np.float64)
    angle = 2.0 * np.pi * _uniform01(bits[:, 1]).astype(np.float64)
    radius = np.sqrt(-2.0 * np.log(u1))
    pairs = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return pairs.reshape(-1)[:size].astype(np.float32).reshape(shape)


def _orthogonal_block(d: int, seed: tuple[int, int]) -> np.ndarray:
    q, _ = np.linalg.qr(stateless_normal((d, d), seed).astype(np.float64))
    return q.T


def projection_matrix(m: int, d: int, seed: int) -> np.ndarray:
    """Upstream's ``create_projection_matrix(m, d, seed)`` (scaling 0): ``(m, d)`` float32."""
    n_full = m // d
    blocks = [_orthogonal_block(d, (seed + b, 2)) for b in range(n_full)]
    if m > n_full * d:
        blocks.append(_orthogonal_block(d, (seed + n_full, 5))[: m - n_full * d])
    norms = np.linalg.norm(stateless_normal((m, d), (seed + n_full + 4, 6)).astype(np.float64), axis=1)
    return (norms[:, None] * np.vstack(blocks)).astype(np.float32)
