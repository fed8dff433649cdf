"""The TensorFlow side of EpiBERT: upstream-format TFRecords, the Keras reference model, training, reference.

TensorFlow/Keras only; never imports torch. The model follows the published ``epibert_atac_pretrain``
(every size a config value):

* DNA: Conv1D(k=15) -> residual conv block (k=1) -> SoftmaxPooling1D(2) -> tower of conv blocks (k=5),
  each followed by SoftmaxPooling1D(2). A conv block is BatchNorm(eps 1e-5) -> GELU -> Conv1D ('same').
* ATAC (4 bp bins): Conv1D(32, k=50) -> residual conv block (k=1) -> MaxPool(2) -> tower of conv blocks
  (k=5) with MaxPool(``atac_pool``).
* Motif activity: Dense(units, GELU) -> Dropout -> Dense(units // 4) -> Dropout, repeated on every token.
* Concatenate -> Dense(d, no bias) -> ``num_layers`` pre-LayerNorm (eps 1e-5) transformer layers with
  interleaved rotary embeddings on queries and keys -> LayerNorm.
* Head: conv block (k=1, d // final_point_scale) -> Dropout -> GELU -> Dense(1) -> softplus -> crop.
* Fine-tuning (``mode: finetune``, the source's ``epibert_rampage_finetune`` with ``predict_atac``): a
  second head of the same form, ``rna_head_*``, for the expression profile; the output ``tracks`` stacks
  the ATAC and expression profiles ``(N, bins, 2)``. Loss: ``poisson_multinomial`` of the expression per
  example (mean over the batch) + ``atac_scale`` x the masked-ATAC loss, as the source's fine-tuning step.

The source's GELUs are ``tfa.layers.GELU()`` (tanh approximation) except the motif Dense (``'gelu'``,
erf); its feed-forward uses ReLU (``ffn_activation``). Attention is the source's Performer FAVOR+ (ReLU
kernel, 256 random features from ``seed``, see ``favor``); ``attention: softmax`` selects exact attention
(ours). The rotary table is float32 (the source casts it to bfloat16).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError
from tf2lightning.families.epibert import favor, tfdata
from tf2lightning.families.epibert.data import has_rna
from tf2lightning.families.epibert.draws import draw
from tf2lightning.families.epibert.geometry import Geometry, cell_type, geometry, mask_rate, rotary_table
from tf2lightning.families.epibert.layer_names import parity_layers
from tf2lightning.families.epibert.modes import HEAD_PREFIX, is_finetune
from tf2lightning.families.epibert.synthetic import Example, generate
from tf2lightning.run import Run
from tf2lightning.tfside.saving import save_keras_h5

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
FOLDERS = {"train": "train", "val": "valid", "test": "test"}  # upstream's split folders
BN_EPS = 1e-5
LN_EPS = 1e-5


# --------------------------------------------------------------------------------------------- data
def _feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def serialize(example: Example) -> bytes:
    """One upstream-format ``tf.train.Example``: raw ASCII sequence, serialized float16/int32 tensors."""
    tensors = example.tensors()
    feature = {name: _feature(tf.io.serialize_tensor(tf.constant(v)).numpy()) for name, v in tensors.items()}
    feature["sequence"] = _feature(example.sequence)
    feature["interval"] = _feature(example.interval)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_data(run: Run, out_dir: Path) -> None:
    """Write ``<folder>/<cell type>.tfr`` (ZLIB) for every split, in upstream's folders (``valid`` for
    the validation split)."""
    geo = geometry(run)
    options = tf.io.TFRecordOptions(compression_type=tfdata.COMPRESSION)
    for index, split in enumerate(SPLITS):
        rng = np.random.default_rng((run.seed, index))
        examples = generate(rng, geo, cell_type(run), int(run.dataset[f"n_{split}"]), split)
        path = tfdata.record_path(out_dir, FOLDERS[split], cell_type(run))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp), options) as writer:
            for example in examples:
                writer.write(serialize(example))


# -------------------------------------------------------------------------------------------- model
@keras.saving.register_keras_serializable(package="epibert")
class TanhGELU(keras.layers.Layer):
    """``tfa.layers.GELU()``: GELU with the tanh approximation."""

    def call(self, inputs: Any) -> Any:
        return keras.activations.gelu(inputs, approximate=True)


@keras.saving.register_keras_serializable(package="epibert")
class SoftmaxPooling1D(keras.layers.Layer):
    """Pool windows of ``pool_size`` with softmax weights from a bias-free 1-unit projection (``kernel``
    ``(channels, 1)``), softmax over the window, as the source's ``SoftmaxPooling1D``."""

    def __init__(self, pool_size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), 1), initializer="lecun_normal"
        )

    def call(self, inputs: Any) -> Any:
        length, channels = inputs.shape[1], inputs.shape[2]
        windows = keras.ops.reshape(inputs, (-1, length // self.pool_size, self.pool_size, channels))
        weights = keras.ops.softmax(keras.ops.matmul(windows, self.kernel), axis=-2)
        return keras.ops.sum(windows * weights, axis=-2)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1] // self.pool_size, input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size}


def _rotate_every_two(x: Any) -> Any:
    """Interleaved pairs ``(x[2i], x[2i+1]) -> (-x[2i+1], x[2i])`` (the source's ``rotate_every_two``)."""
    shape = tf.shape(x)
    pairs = tf.reshape(x, tf.concat([shape[:-1], [-1, 2]], 0))
    return tf.reshape(tf.stack([-pairs[..., 1], pairs[..., 0]], -1), shape)


@keras.saving.register_keras_serializable(package="epibert")
class RotaryAttention(keras.layers.Layer):
    """Multi-head self-attention with interleaved rotary embeddings on queries and keys, no biases.

    Weights as the source's ``DenseEinsum`` layers: ``query``/``key``/``value`` ``(d, heads, head_dim)``,
    ``output`` ``(heads, head_dim, d)``. ``attention="performer"`` is the source's FAVOR+ (ReLU kernel,
    ``favor.projection_matrix`` from ``seed``); ``"softmax"`` exact attention (ours).
    """

    def __init__(self, num_heads: int, attention: str = "performer", seed: int = 19, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_heads, self.attention, self.seed = int(num_heads), str(attention), int(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        d = int(input_shape[-1])
        self.head_dim = d // self.num_heads
        qkv = (d, self.num_heads, self.head_dim)
        self.query = self.add_weight(name="query", shape=qkv, initializer="glorot_uniform")
        self.key = self.add_weight(name="key", shape=qkv, initializer="glorot_uniform")
        self.value = self.add_weight(name="value", shape=qkv, initializer="glorot_uniform")
        self.output_kernel = self.add_weight(
            name="output", shape=(self.num_heads, self.head_dim, d), initializer="glorot_uniform"
        )
        sin, cos = rotary_table(int(input_shape[1]), self.head_dim)
        self.sin, self.cos = tf.constant(sin[:, None, :]), tf.constant(cos[:, None, :])
        matrix = favor.projection_matrix(favor.NB_RANDOM_FEATURES, self.head_dim, self.seed)
        self.projection = tf.constant(matrix)

    def call(self, inputs: Any) -> Any:
        q = tf.einsum("btd,dhk->bthk", inputs, self.query)
        k = tf.einsum("btd,dhk->bthk", inputs, self.key)
        v = tf.einsum("btd,dhk->bthk", inputs, self.value)
        q = q * self.cos + _rotate_every_two(q) * self.sin
        k = k * self.cos + _rotate_every_two(k) * self.sin
        if self.attention == "performer":
            out = _favor(q, k, v, self.projection)
        else:
            scores = tf.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(self.head_dim).astype(np.float32)
            out = tf.einsum("bhqs,bshk->bqhk", tf.nn.softmax(scores, axis=-1), v)
        return tf.einsum("bqhk,hkd->bqd", out, self.output_kernel)

    def get_config(self) -> dict[str, Any]:
        extra = {"num_heads": self.num_heads, "attention": self.attention, "seed": self.seed}
        return {**super().get_config(), **extra}


def _favor(q: Any, k: Any, v: Any, projection: Any) -> Any:
    """The source's noncausal FAVOR+ with the ReLU kernel on ``(B, L, H, hd)`` queries, keys, values."""
    ratio = 1.0 / np.sqrt(np.float32(projection.shape[0]))
    q_prime = tf.nn.relu(ratio * tf.einsum("blhd,md->blhm", q, projection)) + favor.KERNEL_STABILIZER
    k_prime = tf.nn.relu(ratio * tf.einsum("blhd,md->blhm", k, projection)) + favor.KERNEL_STABILIZER
    kv = tf.einsum("blhm,blhd->bhmd", k_prime, v)
    numerator = tf.einsum("blhm,bhmd->blhd", q_prime, kv)
    denominator = tf.einsum("blhm,bhm->blh", q_prime, tf.reduce_sum(k_prime, axis=1))
    return numerator / denominator[..., None]


CUSTOM_OBJECTS = {
    "TanhGELU": TanhGELU,
    "SoftmaxPooling1D": SoftmaxPooling1D,
    "RotaryAttention": RotaryAttention,
}


def _conv_block(x: Any, name: str, filters: int, width: int, momentum: float) -> Any:
    layers = keras.layers
    x = layers.BatchNormalization(epsilon=BN_EPS, momentum=momentum, name=f"{name}_bn")(x)
    x = TanhGELU(name=f"{name}_gelu")(x)
    return layers.Conv1D(
        filters, width, padding="same", kernel_initializer="lecun_normal", name=f"{name}_conv"
    )(x)


def _stem(x: Any, prefix: str, filters: int, width: int, momentum: float) -> Any:
    x = keras.layers.Conv1D(
        filters, width, padding="same", kernel_initializer="lecun_normal", name=f"{prefix}_conv"
    )(x)
    residual = _conv_block(x, f"{prefix}_res", filters, 1, momentum)
    return keras.layers.Add(name=f"{prefix}_res_add")([x, residual])


def _transformer_layer(x: Any, i: int, arch: Any) -> Any:
    layers, d = keras.layers, int(arch["filter_list_seq"][-1])
    rate = float(arch["dropout"])
    h = layers.LayerNormalization(epsilon=LN_EPS, name=f"layer_{i}_ln")(x)
    h = RotaryAttention(
        int(arch["num_heads"]), str(arch["attention"]), int(arch["seed"]), name=f"layer_{i}_attention"
    )(h)
    h = layers.Dropout(rate, name=f"layer_{i}_dropout")(h)
    x = layers.Add(name=f"layer_{i}_attention_add")([x, h])
    h = layers.LayerNormalization(epsilon=LN_EPS, name=f"layer_{i}_ffn_ln")(x)
    h = layers.Dense(2 * d, name=f"layer_{i}_ffn_wide")(h)
    h = layers.Dropout(rate, name=f"layer_{i}_ffn_dropout1")(h)
    h = layers.Activation(str(arch["ffn_activation"]), name=f"layer_{i}_ffn_act")(h)
    h = layers.Dense(d, name=f"layer_{i}_ffn_narrow")(h)
    h = layers.Dropout(rate, name=f"layer_{i}_ffn_dropout2")(h)
    return layers.Add(name=f"layer_{i}_ffn_add")([x, h])


def build_keras_model(run: Run) -> keras.Model:
    """The Keras EpiBERT for ``run``; layer names are stable and used by ``weights`` and ``model``."""
    geo, arch, layers = geometry(run), run.arch, keras.layers
    momentum = float(arch["bn_momentum"])
    sequence = keras.Input((geo.input_length, 4), name="sequence")
    atac = keras.Input((geo.atac_length, 1), name="atac")
    motif = keras.Input((geo.n_motifs,), name="motif_activity")

    seq_filters = [int(f) for f in arch["filter_list_seq"]]
    x = _stem(sequence, "stem", seq_filters[0], 15, momentum)
    x = SoftmaxPooling1D(2, name="stem_pool")(x)
    for i, filters in enumerate(seq_filters):
        x = _conv_block(x, f"tower_{i}", filters, 5, momentum)
        x = SoftmaxPooling1D(2, name=f"tower_{i}_pool")(x)

    a = _stem(atac, "atac_stem", int(arch["atac_stem_filters"]), 50, momentum)
    a = layers.MaxPooling1D(2, name="atac_stem_pool")(a)
    for i, filters in enumerate(arch["filter_list_atac"]):
        a = _conv_block(a, f"atac_tower_{i}", int(filters), 5, momentum)
        a = layers.MaxPooling1D(int(arch["atac_pool"]), name=f"atac_tower_{i}_pool")(a)

    units, motif_rate = int(arch["motif_units_fc"]), float(arch["motif_dropout"])
    m = layers.Dense(units, kernel_initializer="lecun_normal", name="motif_fc1")(motif)
    m = layers.Activation("gelu", name="motif_gelu")(m)  # Keras 'gelu': erf, as the source's Dense
    m = layers.Dropout(motif_rate, name="motif_dropout1")(m)
    m = layers.Dense(units // 4, kernel_initializer="lecun_normal", name="motif_fc2")(m)
    m = layers.Dropout(motif_rate / 4, name="motif_dropout2")(m)
    m = layers.RepeatVector(geo.n_tokens, name="motif_tile")(m)

    x = layers.Concatenate(name="concat")([x, a, m])
    x = layers.Dense(seq_filters[-1], use_bias=False, kernel_initializer="lecun_normal", name="projection")(x)
    for i in range(int(arch["num_layers"])):
        x = _transformer_layer(x, i, arch)
    x = layers.LayerNormalization(epsilon=LN_EPS, name="final_ln")(x)

    profile = _profile_head(x, "head", "profile", geo, arch)
    if not is_finetune(arch):
        return keras.Model([sequence, atac, motif], profile, name="epibert")
    rna = _profile_head(x, HEAD_PREFIX, "rna", geo, arch)
    tracks = layers.Concatenate(name="tracks")([profile, rna])
    return keras.Model([sequence, atac, motif], tracks, name="epibert")


def _profile_head(x: Any, prefix: str, name: str, geo: Geometry, arch: Any) -> Any:
    """Pointwise conv block -> Dropout -> GELU -> Dense(1) -> softplus -> crop: one profile per bin."""
    layers = keras.layers
    filters = int(arch["filter_list_seq"][-1]) // int(arch["final_point_scale"])
    x = _conv_block(x, prefix, filters, 1, float(arch["bn_momentum"]))
    x = layers.Dropout(float(arch["pointwise_dropout"]), name=f"{prefix}_dropout")(x)
    x = TanhGELU(name=f"{prefix}_gelu2")(x)
    x = layers.Dense(1, kernel_initializer="lecun_normal", name=f"{prefix}_dense")(x)
    x = layers.Activation("softplus", name=f"{prefix}_softplus")(x)
    return layers.Cropping1D((geo.crop, geo.crop), name=name)(x)


# ------------------------------------------------------------------------------------------- training
def poisson_multinomial(
    target: tf.Tensor, pred: tf.Tensor, total_weight: float, epsilon: float = 1e-6
) -> tf.Tensor:
    """The source's loss along the last axis (the bins), averaged over any leading axes: multinomial term
    + ``total_weight`` * Poisson term on the totals, each / length, rescaled by ``2 / (1 + total_weight)``.
    Pretraining pools the masked bins of the batch into one vector, as the source's train step does."""
    n = tf.cast(tf.shape(target)[-1], tf.float32)
    target, pred = target + epsilon, pred + epsilon
    s_true, s_pred = tf.reduce_sum(target, -1), tf.reduce_sum(pred, -1)
    poisson = (s_pred - s_true * tf.math.log(s_pred + keras.backend.epsilon())) / n
    multinomial = -tf.reduce_sum(target * tf.math.log(pred / s_pred[..., None]), -1) / n
    return tf.reduce_mean((multinomial + total_weight * poisson) * 2.0 / (1.0 + total_weight))


def training_loss(
    pred: tf.Tensor, targets: tuple[tf.Tensor, ...], total_weight: float, atac_scale: float | None
) -> tf.Tensor:
    """Pretraining (``atac_scale`` None): the loss of the masked ATAC bins. Fine-tuning: the expression
    loss per example (all bins) + ``atac_scale`` x the masked-ATAC loss, as the source's fine-tuning step."""
    target, mask = targets[:2]
    where = tf.where(mask > 0)
    atac = pred[..., 0]
    atac_loss = poisson_multinomial(tf.gather_nd(target, where), tf.gather_nd(atac, where), total_weight)
    if atac_scale is None:
        return atac_loss
    return poisson_multinomial(targets[2], pred[..., 1], total_weight) + atac_scale * atac_loss


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    total_weight: float,
    atac_scale: float | None = None,
) -> Any:
    """The source's train step as a ``tf.function``, ``step(inputs, target, mask[, rna])``."""

    @tf.function
    def step(inputs: tuple[tf.Tensor, ...], *targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = training_loss(model(inputs, training=True), targets, total_weight, atac_scale)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def run_train_step(run: Run, model: keras.Model) -> tuple[Any, keras.optimizers.Optimizer]:
    """The run's train step on ``model`` (Adam at ``legacy_lr``, clipnorm 1, the run's loss) and its
    optimizer."""
    optimizer = keras.optimizers.Adam(float(run.arch["legacy_lr"]), clipnorm=1.0)
    atac_scale = float(run.arch.get("atac_scale", 0.1)) if is_finetune(run.arch) else None
    total_weight = float(run.train.get("total_weight", 0.15))
    return make_train_step(model, optimizer, total_weight, atac_scale), optimizer


def train_model(run: Run, data_dir: Path, out_dir: Path) -> None:
    """Train briefly with the source's train step; write the checkpoint folder (``checkpoint``,
    ``ckpt-1.*``), ``model.h5`` (for the reference) and ``history.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(run.seed)
    geo, arch = geometry(run), run.arch
    model = build_keras_model(run)
    finetune = is_finetune(arch)
    records = tfdata.record_path(data_dir, "train", cell_type(run))
    if finetune and not has_rna(records):
        raise FormatError(f"{records}: record 0 has no 'rna' feature, which fine-tuning needs")
    step, optimizer = run_train_step(run, model)
    rate = mask_rate(run)
    losses = []
    for epoch in range(int(arch["legacy_epochs"])):
        ds = tfdata.make_dataset(
            data_dir,
            "train",
            cell_type(run),
            geo,
            rate,
            int(arch["legacy_batch_size"]),
            run.seed + epoch,
            rna=finetune,
        )
        started, batch_losses = time.perf_counter(), []
        for inputs, targets in ds:
            batch_losses.append(float(step(inputs, *targets)))
        losses.append(float(np.mean(batch_losses)))
        log.info("legacy epoch %d: loss %.4f (%.1f s)", epoch, losses[-1], time.perf_counter() - started)
    save_keras_h5(model, out_dir / "model.h5")
    # the checkpoint folder as upstream's scripts leave it: ``checkpoint`` + ``ckpt-1.*`` (model, optimizer)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer), str(out_dir), 1).save()
    with atomic_path(out_dir / "history.json") as tmp:
        tmp.write_text(json.dumps({"loss": losses}, indent=2) + "\n")


def load_model(model_dir: Path) -> keras.Model:
    """The Keras model from ``model_dir/model.h5``."""
    return keras.models.load_model(Path(model_dir) / "model.h5", custom_objects=CUSTOM_OBJECTS, compile=False)


# ------------------------------------------------------------------------------------------ reference
def probe_examples(
    geo: Geometry, data_dir: Path, split: str, cell_type: str, n: int, rate: float, seed: int
) -> dict[str, np.ndarray]:
    """The first ``n`` examples of a split, augmented with numpy draws from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    path = tfdata.record_path(data_dir, split, cell_type)
    dtypes = tfdata.record_dtypes(path)
    ds = tf.data.TFRecordDataset(str(path), compression_type=tfdata.COMPRESSION)
    out: list[dict[str, np.ndarray]] = []
    for record in ds.take(n):
        drawn = draw(rng, geo)
        example = tfdata.augment(tfdata.parse(record, geo, dtypes=dtypes), drawn, geo, rate)
        out.append({k: v.numpy() for k, v in example.items()})
    return {k: np.stack([o[k] for o in out]) for k in out[0]}


def reference(run: Run, model_dir: Path, data_dir: Path, out_h5: Path) -> None:
    """Reference outputs of ``model.h5`` on augmented test examples, with the parity layers' activations."""
    from tf2lightning.tfside.reference import write_reference

    geo = geometry(run)
    if not (Path(model_dir) / "model.h5").is_file():
        return upstream_reference(run, Path(model_dir), data_dir, out_h5)
    model = load_model(model_dir)
    batch = probe_examples(
        geo,
        data_dir,
        "test",
        cell_type(run),
        int(run.parity["n_probe"]),
        mask_rate(run),
        run.seed,
    )
    inputs = {
        "sequence": tf.one_hot(batch["sequence"], 5)[..., :4].numpy(),
        "atac": batch["atac"][..., None],
        "motif_activity": batch["motif"],
    }
    write_reference(model, inputs, Path(out_h5), list(parity_layers(run)))


def upstream_reference(run: Run, ckpt: Path, data_dir: Path, out_h5: Path) -> None:
    """Reference outputs of upstream's own checkpoint folder (or ``ckpt-N.index``), restored into the
    Keras-2 model with upstream's object graph (every variable bound), in upstream's layout and call order;
    outputs named as upstream's (``out`` or ``out_atac``, ``out_rna``).

    With upstream's recorded outputs beside the checkpoint (``recorded.find_probe``), the inputs are the
    probe's and the reference outputs upstream's recorded ones (the layers stay the rebuild's); otherwise
    augmented test examples and the rebuild's outputs."""
    from tf2lightning.core.reference_file import write_reference_arrays
    from tf2lightning.core.tf_checkpoint import resolve_checkpoint_prefix
    from tf2lightning.families.epibert import recorded, tf_upstream
    from tf2lightning.families.epibert.layer_names import upstream_table
    from tf2lightning.tfside.reference import run_with_activations

    geo = geometry(run)
    model = tf_upstream.build(geo, dict(run.arch))
    tf_upstream.restore(model, resolve_checkpoint_prefix(ckpt))
    attrs = {
        "tf_keras_version": tf_upstream.keras.__version__,
        "model": "upstream epibert",
        "checkpoint": str(ckpt),
    }
    names = ["out_atac", "out_rna"] if is_finetune(run.arch) else ["out"]
    probe = recorded.find_probe(ckpt)
    if probe is None:
        batch = probe_examples(
            geo, data_dir, "test", cell_type(run), int(run.parity["n_probe"]), mask_rate(run), run.seed
        )
        inputs = {
            "sequence": tf.one_hot(batch["sequence"], 5)[..., :4].numpy(),
            "atac": batch["atac"][..., None],
            "motif_activity": batch["motif"][:, None, :],
        }
    else:
        inputs, upstream_outputs = recorded.probe_arrays(probe)
        _check_probe(probe, inputs, upstream_outputs, geo, names)
        attrs[recorded.REFERENCE_ATTR] = str(probe)
        log.info("reference outputs: upstream's recorded ones in %s", probe)
    outputs, activations = run_with_activations(model, inputs, list(upstream_table(run)))
    named = dict(zip(names, outputs.values(), strict=True)) if probe is None else upstream_outputs
    write_reference_arrays(out_h5, inputs, named, activations, attrs)


def _check_probe(
    probe: Path,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    geo: Geometry,
    names: list[str],
) -> None:
    """The probe must hold upstream's three inputs at the run's sizes and the model's outputs."""
    want = {
        "sequence": (geo.input_length, 4),
        "atac": (geo.atac_length, 1),
        "motif_activity": (1, geo.n_motifs),
    }
    got = {name: tuple(array.shape[1:]) for name, array in inputs.items()}
    if got != want:
        raise FormatError(f"{probe}: inputs {got}, the run's model takes {want} (after the batch axis)")
    if list(outputs) != names:
        raise FormatError(f"{probe}: outputs {list(outputs)}, the run's model gives {names}")
