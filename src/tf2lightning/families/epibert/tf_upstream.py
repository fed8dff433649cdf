"""Upstream's EpiBERT as a Keras-2 (``tf_keras``) model with upstream's object graph, so that
``tf.train.Checkpoint(model=...)`` restores the folders upstream's training scripts write, every model
variable bound. TensorFlow only; never imports torch.

Written from upstream's description (naumanjaved/EpiBERT @ 7cdbb17, ``src/models/epibert_atac_pretrain``,
``epibert_rampage_finetune`` with ``predict_atac=True``, ``src/layers``): checkpoint keys follow attribute
names and ``Sequential`` positions, not layer names, so the attributes below carry upstream's names and the
layers our own (unique, for per-layer parity). Computation is float32 throughout: upstream's two hard-coded
bfloat16 casts (rotary table, FAVOR normaliser) follow the input dtype here, as in the fixtures' float32
reference. The Performer's projection matrix is ``favor.projection_matrix`` (upstream's draw, TF-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf2lightning.errors import FormatError
from tf2lightning.families.epibert import favor
from tf2lightning.families.epibert.geometry import Geometry, rotary_table

layers = keras.layers
EPS = 1e-5


class GELU(layers.Layer):
    """``tfa.layers.GELU()``: the tanh approximation."""

    def call(self, x: Any) -> Any:
        return tf.nn.gelu(x, approximate=True)


class SoftmaxPooling1D(layers.Layer):
    """Windows of 2 weighted by ``softmax(dense(x))`` over the window (attribute ``dense``, as upstream)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = layers.Dense(1, use_bias=False, kernel_initializer="lecun_normal")

    def call(self, x: Any) -> Any:
        _, length, channels = x.shape
        windows = tf.reshape(x, [-1, length // 2, 2, channels])
        return tf.reduce_sum(windows * tf.nn.softmax(self.dense(windows), axis=-2), axis=-2)


class Residual(layers.Layer):
    """``x + layer(x)``; the wrapped layer is the attribute ``_layer``, as upstream's."""

    def __init__(self, layer: layers.Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._layer = layer

    def call(self, x: Any, training: Any = None) -> Any:
        return x + self._layer(x, training=training)


def conv_block(filters: int, width: int, momentum: float, name: str) -> keras.Sequential:
    """BatchNorm -> GELU (tanh) -> Conv1D 'same' (upstream's ``conv_block``)."""
    return keras.Sequential(
        [
            layers.BatchNormalization(momentum=momentum, epsilon=EPS, name=f"{name}_bn"),
            GELU(name=f"{name}_gelu"),
            layers.Conv1D(
                filters, width, padding="same", kernel_initializer="lecun_normal", name=f"{name}_conv"
            ),
        ],
        name=name,
    )


class DenseEinsum(layers.Layer):
    """Upstream's bias-free ``DenseEinsum``: kernel ``(d, heads, head_dim)``, or ``(heads, head_dim, d)``
    for the output projection (``summed=2``)."""

    def __init__(self, shape: tuple[int, ...], summed: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out_shape, self.summed = tuple(shape), summed

    def build(self, input_shape: Any) -> None:
        kernel = tuple(int(s) for s in input_shape[-self.summed :]) + self.out_shape
        self._kernel = self.add_weight("kernel", shape=kernel, initializer="glorot_uniform")

    def call(self, x: Any) -> Any:
        return tf.einsum("btd,dhk->bthk" if self.summed == 1 else "bthk,hkd->btd", x, self._kernel)


def _rotate_every_two(x: Any) -> Any:
    pairs = tf.reshape(x, tf.concat([tf.shape(x)[:-1], [-1, 2]], 0))
    return tf.reshape(tf.stack([-pairs[..., 1], pairs[..., 0]], -1), tf.shape(x))


class Attention(layers.Layer):
    """FAVOR+ self-attention (ReLU kernel) with rotary queries and keys; upstream's four ``*_dense_layer``."""

    def __init__(self, d: int, heads: int, seed: int, n_tokens: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        head_dim = d // heads
        self.query_dense_layer = DenseEinsum((heads, head_dim), name="query")
        self.key_dense_layer = DenseEinsum((heads, head_dim), name="key")
        self.value_dense_layer = DenseEinsum((heads, head_dim), name="value")
        self.output_dense_layer = DenseEinsum((d,), summed=2, name="output_transform")
        self.projection = tf.constant(favor.projection_matrix(favor.NB_RANDOM_FEATURES, head_dim, seed))
        sin, cos = rotary_table(n_tokens, head_dim)
        self.sin, self.cos = tf.constant(sin[:, None, :]), tf.constant(cos[:, None, :])

    def _features(self, x: Any) -> Any:
        ratio = 1.0 / np.sqrt(np.float32(self.projection.shape[0]))
        return tf.nn.relu(ratio * tf.einsum("blhd,md->blhm", x, self.projection)) + favor.KERNEL_STABILIZER

    def call(self, x: Any) -> Any:
        q, k, v = self.query_dense_layer(x), self.key_dense_layer(x), self.value_dense_layer(x)
        q = q * self.cos + _rotate_every_two(q) * self.sin
        k = k * self.cos + _rotate_every_two(k) * self.sin
        q_prime, k_prime = self._features(q), self._features(k)
        numerator = tf.einsum("blhm,bhmd->blhd", q_prime, tf.einsum("blhm,blhd->bhmd", k_prime, v))
        denominator = tf.einsum("blhm,bhm->blh", q_prime, tf.reduce_sum(k_prime, axis=1))
        return self.output_dense_layer(numerator / denominator[..., None])


class FFN(layers.Layer):
    def __init__(self, d: int, rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.FFN_layer_norm = layers.LayerNormalization(epsilon=EPS)
        self.FFN_dense_wide = layers.Dense(2 * d)
        self.dropout = layers.Dropout(rate)
        self.relu = layers.ReLU()
        self.FFN_dense_narrow = layers.Dense(d)

    def call(self, x: Any, training: Any = None) -> Any:
        h = self.relu(self.dropout(self.FFN_dense_wide(self.FFN_layer_norm(x)), training=training))
        return self.dropout(self.FFN_dense_narrow(h), training=training)


class Performer(layers.Layer):
    """Pre-LayerNorm FAVOR+ attention and FFN, each added back (upstream's ``Performer``)."""

    def __init__(self, d: int, heads: int, seed: int, n_tokens: int, rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer_norm = layers.LayerNormalization(epsilon=EPS)
        self.self_attention = Attention(d, heads, seed, n_tokens)
        self.dropout = layers.Dropout(rate)
        self.FFN = FFN(d, rate, name="FFN")

    def call(self, x: Any, training: Any = None) -> Any:
        x = x + self.dropout(self.self_attention(self.layer_norm(x)), training=training)
        return x + self.FFN(x, training=training)


class PerformerEncoder(layers.Layer):
    """The stack (attribute ``layers``, a list) and the final LayerNorm (``layer_norm``)."""

    def __init__(self, arch: dict, n_tokens: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        d, heads, seed = int(arch["filter_list_seq"][-1]), int(arch["num_heads"]), int(arch["seed"])
        rate = float(arch["dropout"])
        self.layers = [
            Performer(d, heads, seed, n_tokens, rate, name=f"layer_{i}")
            for i in range(int(arch["num_layers"]))
        ]
        self.layer_norm = layers.LayerNormalization(epsilon=EPS, name="final_ln")

    def call(self, x: Any, training: Any = None) -> Any:
        for layer in self.layers:
            x = layer(x, training=training)
        return self.layer_norm(x)


class EpiBERT(keras.Model):
    """``(sequence (N, L, 4), atac (N, L/4, 1), motif_activity (N, 1, M))`` -> the ATAC profile
    ``(N, bins, 1)``, or ``(out_atac, out_rna)`` for a fine-tuning architecture."""

    def __init__(self, geo: Geometry, arch: dict, **kwargs: Any) -> None:
        super().__init__(name="epibert", **kwargs)
        seq, atac = [int(f) for f in arch["filter_list_seq"]], [int(f) for f in arch["filter_list_atac"]]
        momentum, d = float(arch["bn_momentum"]), seq[-1]
        self.n_tokens, self.crop = geo.n_tokens, geo.crop
        self.finetune = arch.get("mode") == "finetune"
        conv = {"padding": "same", "kernel_initializer": "lecun_normal"}
        self.stem_conv = layers.Conv1D(seq[0], 15, name="stem_conv", **conv)
        self.stem_res_conv = Residual(conv_block(seq[0], 1, momentum, "stem_res_block"), name="stem_res")
        self.stem_pool = SoftmaxPooling1D(name="stem_pool")
        a0 = int(arch["atac_stem_filters"])
        self.stem_conv_atac = layers.Conv1D(a0, 50, name="atac_stem_conv", **conv)
        self.stem_res_conv_atac = Residual(
            conv_block(a0, 1, momentum, "atac_stem_res_block"), name="atac_stem_res"
        )
        self.stem_pool_atac = layers.MaxPooling1D(2, name="atac_stem_pool")
        self.conv_tower = keras.Sequential(
            [
                keras.Sequential(
                    [conv_block(f, 5, momentum, f"tower_{i}"), SoftmaxPooling1D(name=f"tower_{i}_pool")],
                    name=f"tower_block_{i}",
                )
                for i, f in enumerate(seq)
            ],
            name="conv_tower",
        )
        self.conv_tower_atac = keras.Sequential(
            [
                keras.Sequential(
                    [
                        conv_block(f, 5, momentum, f"atac_tower_{i}"),
                        layers.MaxPooling1D(int(arch["atac_pool"]), name=f"atac_tower_{i}_pool"),
                    ],
                    name=f"atac_tower_block_{i}",
                )
                for i, f in enumerate(atac)
            ],
            name="conv_tower_atac",
        )
        units, rate = int(arch["motif_units_fc"]), float(arch["motif_dropout"])
        self.motif_dropout1 = layers.Dropout(rate)
        self.motif_dropout2 = layers.Dropout(rate / 4)
        self.motif_activity_fc1 = layers.Dense(units, activation="gelu", name="motif_fc1")
        self.motif_activity_fc2 = layers.Dense(units // 4, name="motif_fc2")
        self.pre_transformer_projection = layers.Dense(d, use_bias=False, name="projection")
        self.performer = PerformerEncoder(arch, geo.n_tokens, name="performer")
        width = d // int(arch["final_point_scale"])
        self.final_pointwise_conv = conv_block(width, 1, momentum, "head")
        self.final_dense_profile = layers.Dense(1, activation="softplus", name="head_dense")
        if self.finetune:
            self.final_pointwise_conv_rna = conv_block(width, 1, momentum, "rna_head")
            self.final_dense_profile_rna = layers.Dense(1, activation="softplus", name="rna_head_dense")
        self.dropout = layers.Dropout(float(arch["pointwise_dropout"]))
        self.gelu = GELU()

    def _head(self, x: Any, conv: Any, dense: Any, training: Any) -> Any:
        out = dense(self.gelu(self.dropout(conv(x, training=training), training=training)))
        return out[:, self.crop : self.n_tokens - self.crop]

    def call(self, inputs: Any, training: Any = None) -> Any:
        sequence, atac, motif = inputs.values() if isinstance(inputs, dict) else inputs
        x = self.stem_pool(self.stem_res_conv(self.stem_conv(sequence), training=training))
        x = self.conv_tower(x, training=training)
        a = self.stem_pool_atac(self.stem_res_conv_atac(self.stem_conv_atac(atac), training=training))
        a = self.conv_tower_atac(a, training=training)
        m = self.motif_dropout1(self.motif_activity_fc1(motif), training=training)
        m = self.motif_dropout2(self.motif_activity_fc2(m), training=training)
        m = tf.tile(m, [1, self.n_tokens, 1])
        x = self.pre_transformer_projection(tf.concat([x, a, m], axis=2))
        x = self.performer(x, training=training)
        atac_out = self._head(x, self.final_pointwise_conv, self.final_dense_profile, training)
        if not self.finetune:
            return atac_out
        return atac_out, self._head(x, self.final_pointwise_conv_rna, self.final_dense_profile_rna, training)


def build(geo: Geometry, arch: dict) -> EpiBERT:
    """The model with its variables created (called once on zeros)."""
    model = EpiBERT(geo, arch)
    model(
        (
            tf.zeros([1, geo.input_length, 4]),
            tf.zeros([1, geo.atac_length, 1]),
            tf.zeros([1, 1, geo.n_motifs]),
        ),
        training=False,
    )
    return model


def restore(model: EpiBERT, prefix: str | Path) -> None:
    """Restore upstream's checkpoint ``prefix`` into ``model``: every model variable must be bound (the
    optimizers and bookkeeping variables saved beside it are not the model's and stay unread)."""
    try:
        status = tf.train.Checkpoint(model=model).restore(str(prefix))
    except ValueError as error:  # a variable of another shape, e.g. another head count
        raise FormatError(
            f"{prefix}: the checkpoint does not fit the model (num_heads, sizes): {error}"
        ) from None
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise FormatError(
            f"{prefix}: the checkpoint does not bind every variable of the model: {error}"
        ) from None
    status.expect_partial()
