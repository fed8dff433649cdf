"""The TensorFlow side of Clair3: the ``.bin`` training data, the two Keras networks, training, reference.

TensorFlow/Keras only; never imports torch. ``Clair3_P`` and ``Clair3_F`` follow upstream's
``clair3/model.py`` (HKU-BAL/Clair3 at bb9f969, the last TensorFlow version) on the Keras 2 API
(``tf_keras``, what upstream ran): subclassed models whose layers are attributes, so their object graph is
upstream's (``LSTM1/forward_layer/cell/kernel``, ``res_block1/layer_with_weights-0/conv1/kernel``) and
``load_weights`` binds every variable of an upstream checkpoint. SELU dense layers, selu-activated head
layers followed by one shared softmax (2 heads, or 4 with the indel-length heads), 'same' stride-2
convolutions and pyramid pooling built on ``tf.nn.max_pool(..., 'SAME')``. Sizes come from the checkpoint
(:func:`checkpoint.network_sizes`); each layer is given its attribute name as Keras name so reference
activations can be found by it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError
from tf2lightning.families.clair3.bin_format import check_bin, chunk_batches, write_bin
from tf2lightning.families.clair3.bins import KINDS, SPLITS, BinRows, split_rows
from tf2lightning.families.clair3.checkpoint import checkpoint_prefix, network_sizes
from tf2lightning.families.clair3.labels import HEAD_SIZES, HEADS
from tf2lightning.families.clair3.platform import TENSOR_FIELD, network_of, platform_of
from tf2lightning.families.clair3.synthetic import generate_sites
from tf2lightning.run import Run

SIDECAR = "dataset.json"
NORMALIZE_NUM = 100.0  # Clair3 param.NORMALIZE_NUM: full-alignment tensors are divided by it
HEAD_LAYERS = ("Y_gt21_logits", "Y_genotype_logits", "Y_indel_length_logits_1", "Y_indel_length_logits_2")
# The synthetic dataset's chromosome per split (the default split config holds out chr20 and chr21).
SYNTHETIC_CHROMOSOMES = {"train": "chr1", "val": "chr20", "test": "chr21"}
# Upstream's dtypes: pileup counts exceed int8; full-alignment labels are int8, pileup labels int32.
BIN_DTYPES = {"pileup": (np.int32, np.int32), "full_alignment": (np.int8, np.int8)}


# --------------------------------------------------------------------------------------------- data
def write_data(run: Run, out_dir: Path) -> None:
    """A synthetic bin folder in upstream's layout: ``pileup/`` and ``full_alignment/`` each holding
    ``bin_synthetic_60_<chrom>`` files (one chromosome per split, see ``SYNTHETIC_CHROMOSOMES``; both
    networks get the same sites here), plus ``dataset.json``. Split ``i`` is drawn from
    ``numpy.random.default_rng((run.seed, i))``."""
    platform = platform_of(run)
    sizes = {split: int(run.dataset[f"n_{split}"]) for split in SPLITS}
    for index, split in enumerate(SPLITS):
        chrom = SYNTHETIC_CHROMOSOMES[split]
        sites = generate_sites(sizes[split], platform, np.random.default_rng((run.seed, index)), chrom)
        for kind in KINDS:
            matrix_dtype, label_dtype = BIN_DTYPES[kind]
            arrays = {
                "position_matrix": sites[kind].astype(matrix_dtype),
                "label": sites["label"].astype(label_dtype),
                **{k: sites[k] for k in ("position", "alt_info")},
            }
            (Path(out_dir) / kind).mkdir(parents=True, exist_ok=True)
            write_bin(Path(out_dir) / kind / f"bin_synthetic_60_{chrom}", arrays)
    sidecar = {
        "platform": platform.name,
        "depth": platform.depth,
        "flanking": platform.flanking,
        "pileup_shape": list(platform.pileup_shape),
        "full_alignment_shape": list(platform.full_alignment_shape),
        "splits": {
            split: {"sites": sizes[split], "chromosome": SYNTHETIC_CHROMOSOMES[split]} for split in SPLITS
        },
        "heads": {name: len(classes) for name, classes in HEADS.items()},
    }
    with atomic_path(Path(out_dir) / SIDECAR) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2) + "\n")


def _split_parts(run: Run, data_dir: Path, split: str) -> list[BinRows]:
    parts = split_rows(run, data_dir, TENSOR_FIELD[network_of(run)], split)
    if not parts:
        raise FormatError(
            f"{Path(data_dir) / TENSOR_FIELD[network_of(run)]}: no {split} sites under the split"
        )
    return parts


def load_split(run: Run, data_dir: Path, split: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The network's input tensors (as stored: pileup int32, full alignment int8) and one-hot targets per
    head (float32) of one split."""
    shape = platform_of(run).input_shape(network_of(run))
    tensors, labels = [], []
    for part in _split_parts(run, data_dir, split):
        with h5py.File(part.path, "r") as h5:
            check_bin(h5, str(part.path), shape)
            tensors.append(h5["position_matrix"][part.rows])
            labels.append(h5["label"][part.rows])
    return np.concatenate(tensors), head_targets(np.concatenate(labels))


def head_targets(labels: np.ndarray) -> list[np.ndarray]:
    """Label rows ``(N, 90)`` -> the one-hot target of each head, float32."""
    return np.split(labels.astype(np.float32), np.cumsum(HEAD_SIZES)[:-1], axis=1)


def bin_dataset(run: Run, data_dir: Path, split: str, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches ``(tensors int32, per-head targets)`` of one split, read from the bins as Clair3's
    ``Train.py`` does: shuffled chunks of consecutive rows (:func:`bin_format.chunk_batches`, fresh every
    pass) in a ``tf.data`` generator with prefetch."""
    parts = _split_parts(run, data_dir, split)
    shape = platform_of(run).input_shape(network_of(run))
    for part in parts:
        with h5py.File(part.path, "r") as h5:
            check_bin(h5, str(part.path), shape)
    starts = np.cumsum([0] + [len(part.rows) for part in parts])
    n = int(starts[-1])
    rng = np.random.default_rng(seed)
    if not chunk_batches(n, batch_size, rng):
        raise ValueError(f"{data_dir}: {n} {split} sites give no full batch of {batch_size}")

    def read(files: list[h5py.File], chunk: slice) -> tuple[np.ndarray, np.ndarray]:
        tensors, labels = [], []
        for i, part in enumerate(parts):
            lo, hi = max(chunk.start, starts[i]), min(chunk.stop, starts[i + 1])
            if lo < hi:
                rows = part.rows[lo - starts[i] : hi - starts[i]]
                tensors.append(files[i]["position_matrix"][rows])
                labels.append(files[i]["label"][rows])
        return np.concatenate(tensors), np.concatenate(labels)

    def batches() -> Iterator[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
        files = [h5py.File(part.path, "r") for part in parts]
        try:
            for chunks in chunk_batches(n, batch_size, rng):
                pieces = [read(files, chunk) for chunk in chunks]
                x = np.concatenate([p[0] for p in pieces]).astype(np.int32)
                yield x, tuple(head_targets(np.concatenate([p[1] for p in pieces])))
        finally:
            for handle in files:
                handle.close()

    signature = (
        tf.TensorSpec((batch_size, *shape), tf.int32),
        tuple(tf.TensorSpec((batch_size, size), tf.float32) for size in HEAD_SIZES),
    )
    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(tf.data.AUTOTUNE)


# -------------------------------------------------------------------------------------------- model
def _dense(units: int, name: str) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation="selu", name=name)


class _Heads:
    """The dense trunk end shared by both networks: L4, one L5 branch and one selu head layer per head
    (gt21, genotype, and with 4 heads the two indel-length heads), one shared softmax."""

    def _build_heads(self, sizes: dict[str, Any]) -> None:
        l5, self.n_heads = int(sizes["l5_units"]), int(sizes["heads"])
        self.L3_dropout = keras.layers.Dropout(0.2, name="L3_dropout")
        self.L4 = _dense(int(sizes["l4_units"]), "L4")
        self.L4_dropout = keras.layers.Dropout(0.5, name="L4_dropout")
        for k in range(1, self.n_heads + 1):
            setattr(self, f"L5_{k}", _dense(l5, f"L5_{k}"))
            setattr(self, f"L5_{k}_dropout", keras.layers.Dropout(0.2, name=f"L5_{k}_dropout"))
        for name, size in zip(HEAD_LAYERS[: self.n_heads], HEAD_SIZES, strict=False):
            setattr(self, name, _dense(size, name))
        self.softmax = keras.layers.Softmax(name="softmax")

    def _heads(self, x: tf.Tensor, training: bool | None) -> list[tf.Tensor]:
        x = self.L4_dropout(self.L4(x), training=training)
        return [
            self.softmax(getattr(self, name)(getattr(self, f"L5_{k + 1}_dropout")(
                getattr(self, f"L5_{k + 1}")(x), training=training)))
            for k, name in enumerate(HEAD_LAYERS[: self.n_heads])
        ]  # fmt: skip


class Clair3_P(_Heads, keras.Model):
    """Pileup network: two bidirectional LSTMs (published: 128, 160 units), flatten, SELU dense, heads."""

    def __init__(self, sizes: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name="clair3_p", **kwargs)
        lstm = keras.layers.LSTM
        self.LSTM1 = keras.layers.Bidirectional(
            lstm(int(sizes["lstm1_units"]), return_sequences=True), name="LSTM1"
        )
        self.LSTM2 = keras.layers.Bidirectional(
            lstm(int(sizes["lstm2_units"]), return_sequences=True), name="LSTM2"
        )
        self.L3_dropout_flatten = keras.layers.Flatten(name="L3_dropout_flatten")
        self._build_heads(sizes)

    def call(self, x: tf.Tensor, training: bool | None = None) -> list[tf.Tensor]:
        x = tf.cast(x, tf.float32)
        x = self.LSTM2(self.LSTM1(x))
        x = self.L3_dropout_flatten(self.L3_dropout(x, training=training))
        return self._heads(x, training)


class BasicConv2D(keras.layers.Layer):
    """Conv2D ('same') + BatchNormalization + ReLU."""

    def __init__(self, filters: int, kernel_size: int, strides: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(filters, kernel_size, strides, padding="same")
        self.bn = keras.layers.BatchNormalization()
        self.relu = keras.layers.ReLU()

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.relu(self.bn(self.conv(x), training=training))


class BasicBlock(keras.layers.Layer):
    """Residual block: two 3x3 'same' conv + BN, identity shortcut, ReLU after the sum (stride 1)."""

    def __init__(self, filters: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv1 = keras.layers.Conv2D(filters, 3, 1, padding="same")
        self.bn1 = keras.layers.BatchNormalization()
        self.conv2 = keras.layers.Conv2D(filters, 3, 1, padding="same")
        self.bn2 = keras.layers.BatchNormalization()

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        y = tf.nn.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)
        return tf.nn.relu(x + y)


def make_basic_block_layer(filters: int, blocks: int, name: str) -> keras.Sequential:
    """A Sequential of ``blocks`` residual blocks, as Clair3 builds ``res_block1..3``."""
    return keras.Sequential([BasicBlock(filters) for _ in range(blocks)], name=name)


class PyramidPolling(keras.layers.Layer):  # the upstream spelling
    """Spatial pyramid max pooling (bins 3, 2, 1): window = stride = ceil(size / bins), 'SAME' padding."""

    def __init__(self, bins: tuple[int, ...] = (3, 2, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bins = tuple(bins)
        self.flatten = keras.layers.Flatten()

    def call(self, x: tf.Tensor) -> tf.Tensor:
        height, width = int(x.shape[1]), int(x.shape[2])
        pooled = []
        for n in self.bins:
            window = [1, int(np.ceil(height / n)), int(np.ceil(width / n)), 1]
            pooled.append(self.flatten(tf.nn.max_pool(x, ksize=window, strides=window, padding="SAME")))
        return tf.concat(pooled, axis=-1)


class Clair3_F(_Heads, keras.Model):
    """Full-alignment network: three stride-2 conv stages each followed by a residual block, pyramid
    pooling, flatten, SELU dense, heads. Input ``(depth, 33, 8)`` int8, divided by 100."""

    def __init__(self, sizes: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name="clair3_f", **kwargs)
        f1, f2, f3 = (int(f) for f in sizes["conv_filters"])
        self.conv1 = BasicConv2D(f1, 3, 2, name="conv1")
        self.res_block1 = make_basic_block_layer(f1, 1, "res_block1")
        self.conv3 = BasicConv2D(f2, 3, 2, name="conv3")
        self.res_block2 = make_basic_block_layer(f2, 1, "res_block2")
        self.conv5 = BasicConv2D(f3, 3, 2, name="conv5")
        self.res_block3 = make_basic_block_layer(f3, 1, "res_block3")
        self.pyramidpolling = PyramidPolling(name="pyramidpolling")
        self.flatten = keras.layers.Flatten(name="flatten")
        self._build_heads(sizes)

    def call(self, x: tf.Tensor, training: bool | None = None) -> list[tf.Tensor]:
        x = tf.cast(x, tf.float32) / NORMALIZE_NUM
        x = self.res_block1(self.conv1(x, training=training), training=training)
        x = self.res_block2(self.conv3(x, training=training), training=training)
        x = self.res_block3(self.conv5(x, training=training), training=training)
        x = self.flatten(self.L3_dropout(self.pyramidpolling(x), training=training))
        return self._heads(x, training)


def build_keras_model(run: Run, legacy: Path | None = None) -> keras.Model:
    """The run's network, built on its input shape, sized by the checkpoint in ``legacy`` (default: the
    arch's ``legacy_model``) or else by the arch config."""
    network = network_of(run)
    model = (Clair3_P if network == "P" else Clair3_F)(network_sizes(run, legacy))
    shape = platform_of(run).input_shape(network)
    model(np.zeros((1, *shape), dtype=np.int8), training=False)
    return model


# ----------------------------------------------------------------------------------------- training
def compile_for_training(run: Run, model: keras.Model) -> keras.Model:
    """``model`` compiled as the legacy training runs it: Adam at ``legacy_lr``, cross-entropy per head."""
    model.compile(
        jit_compile=False,
        optimizer=keras.optimizers.Adam(float(run.arch.get("legacy_lr", 1e-3))),
        loss=["categorical_crossentropy"] * model.n_heads,
    )
    return model


def train_model(run: Run, data_dir: Path, out_dir: Path) -> None:
    """Train briefly with ``fit`` (Adam, categorical cross-entropy per head) and save the model as upstream
    does (:func:`save_checkpoint`, optimizer state included) plus ``history.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(run.seed)
    model = compile_for_training(run, build_keras_model(run))
    x_train, y_train = load_split(run, data_dir, "train")
    x_val, y_val = load_split(run, data_dir, "val")
    heads = model.n_heads
    history = model.fit(
        x_train,
        y_train[:heads],
        validation_data=(x_val, y_val[:heads]),
        batch_size=int(run.arch.get("legacy_batch_size", 64)),
        epochs=int(run.arch.get("legacy_epochs", 1)),
        verbose=0,
    )
    save_checkpoint(model, out_dir)
    with atomic_path(out_dir / "history.json") as tmp:
        logs = {key: [float(v) for v in values] for key, values in history.history.items()}
        tmp.write_text(json.dumps(logs, indent=2) + "\n")


def save_checkpoint(model: keras.Model, out_dir: Path) -> None:
    """``out_dir/<pileup|full_alignment>.*``: ``model.save_weights(prefix)``, as upstream's released model
    folders hold them (no ``checkpoint`` state file)."""
    kind = "pileup" if isinstance(model, Clair3_P) else "full_alignment"
    model.save_weights(str(Path(out_dir) / kind))
    (Path(out_dir) / "checkpoint").unlink(missing_ok=True)


def load_model(run: Run, model_dir: Path) -> keras.Model:
    """The network restored from ``model_dir`` (a released model folder, a checkpoint prefix or a Train.py
    SavedModel folder; see :mod:`checkpoint`). Every model variable must be bound; the checkpoint's
    optimizer state is ignored."""
    model = build_keras_model(run, model_dir)
    prefix = checkpoint_prefix(model_dir, network_of(run))
    status = model.load_weights(str(prefix))
    try:
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(f"{prefix}: does not bind every variable of {model.name}: {error}") from None
    return model


# ---------------------------------------------------------------------------------------- reference
PARITY_LAYER_NAMES = {
    "P": ("LSTM1", "LSTM2", "L4", "L5_1", "L5_2", "L5_3", "L5_4", *HEAD_LAYERS),
    "F": (
        "conv1", "res_block1", "conv3", "res_block2", "conv5", "res_block3", "pyramidpolling",
        "L4", "L5_1", "L5_2", "L5_3", "L5_4", *HEAD_LAYERS,
    ),
}  # fmt: skip


def reference(run: Run, model_dir: Path, data_dir: Path, out_h5: Path) -> None:
    """Outputs (one per head, named as in ``labels.HEADS``) and per-layer activations of the checkpointed
    network on the first ``n_probe`` test sites."""
    from tf2lightning.core.reference_file import write_reference_arrays
    from tf2lightning.tfside.reference import run_with_activations

    network = network_of(run)
    model = load_model(run, model_dir)
    tensors, _ = load_split(run, data_dir, "test")
    probe = {TENSOR_FIELD[network]: tensors[: int(run.parity.get("n_probe", 32))]}
    names = [n for n in PARITY_LAYER_NAMES[network] if hasattr(model, n)]
    outputs, layers = run_with_activations(model, probe, names)
    named = dict(zip(list(HEADS)[: model.n_heads], outputs.values(), strict=True))
    attrs = {"keras_version": keras.__version__, "model": model.name, "network": network}
    write_reference_arrays(out_h5, probe, named, layers, attrs)
