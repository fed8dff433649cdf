"""The TF input pipeline: EpiBERT TFRecords (ZLIB) -> parsed tensors -> the pretraining augmentation.

TensorFlow only. ``augment`` is the TF twin of :func:`tf2lightning.families.epibert.augment.augment`
(same steps, same draws); ``make_dataset`` feeds it with draws from a ``tf.random.Generator``.
Dtypes come from the serialized tensors: ``atac``, ``motif_activity`` and ``rna`` (the fine-tuning target,
present in fine-tuning records) are float16, peaks int32. ``parse`` turns the sequence into codes
A,C,G,T,N -> 0..4, so ``augment`` takes a parsed record or a row of ``data.h5`` alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf2lightning.core.tfrecord import iter_records, parse_example, parse_tensor
from tf2lightning.errors import FormatError
from tf2lightning.families.epibert.draws import NOISE_MEAN, NOISE_STD
from tf2lightning.families.epibert.geometry import RNA_CLIP, Geometry, rna_kernel

COMPRESSION = "ZLIB"
FLOAT_FEATURES = ("atac", "motif_activity", "rna")
FEATURES = {
    name: tf.io.FixedLenFeature([], tf.string)
    for name in ("sequence", "atac", "peaks", "peaks_center", "interval", "motif_activity")
}
_CODES = np.full(256, 4, dtype=np.int32)
for _code, _base in enumerate(b"ACGT"):
    _CODES[_base] = _CODES[_base + 32] = _code


def record_path(data_dir: Path, split: str, cell_type: str) -> Path:
    """One file per split and cell type, as upstream: ``<split>/<cell type>.tfr``."""
    return Path(data_dir) / split / f"{cell_type}.tfr"


def record_dtypes(path: Path) -> dict[str, tf.DType]:
    """The stored dtype of each serialized float tensor, from the file's first record: upstream's
    pretraining writer stores float16, its RAMPAGE writer float32."""
    for record in iter_records(path, COMPRESSION):
        example = parse_example(record)
        return {
            key: tf.as_dtype(parse_tensor(example[key][0]).dtype) for key in FLOAT_FEATURES if key in example
        }
    raise FormatError(f"{path}: no records")


def parse(
    record: tf.Tensor, geo: Geometry, rna: bool = False, dtypes: dict[str, tf.DType] | None = None
) -> dict[str, tf.Tensor]:
    """One serialized ``tf.train.Example`` -> tensors with their stored dtypes (the sequence as int32
    codes), shapes checked; ``rna`` also parses the expression profile. ``dtypes``: the float tensors'
    stored dtypes (:func:`record_dtypes`; default float16)."""
    features = {**FEATURES, "rna": tf.io.FixedLenFeature([], tf.string)} if rna else FEATURES
    data = tf.io.parse_single_example(record, features)
    dtype = {key: (dtypes or {}).get(key, tf.float16) for key in FLOAT_FEATURES}
    parsed = {
        "sequence": tf.ensure_shape(
            tf.gather(tf.constant(_CODES), tf.cast(tf.io.decode_raw(data["sequence"], tf.uint8), tf.int32)),
            [geo.stored_length],
        ),
        "atac": tf.ensure_shape(tf.io.parse_tensor(data["atac"], dtype["atac"]), [geo.atac_length, 1]),
        "peaks": tf.ensure_shape(tf.io.parse_tensor(data["peaks"], tf.int32), [geo.n_tokens]),
        "peaks_center": tf.ensure_shape(tf.io.parse_tensor(data["peaks_center"], tf.int32), [geo.n_tokens]),
        "motif_activity": tf.ensure_shape(
            tf.io.parse_tensor(data["motif_activity"], dtype["motif_activity"]), [geo.n_motifs]
        ),
    }
    if rna:
        parsed["rna"] = tf.ensure_shape(tf.io.parse_tensor(data["rna"], dtype["rna"]), [geo.n_tokens, 1])
    return parsed


def rna_target(rna: tf.Tensor, geo: Geometry) -> tf.Tensor:
    """Expression counts ``(n_tokens[, 1])`` -> the source's target: clip, sqrt, Gaussian smoothing, crop."""
    x = tf.sqrt(tf.clip_by_value(tf.reshape(tf.cast(rna, tf.float32), [1, -1, 1]), 0.0, RNA_CLIP))
    kernel = tf.constant(rna_kernel()[:, None, None])
    x = tf.nn.conv1d(x, kernel, stride=1, padding="SAME")[0, :, 0]
    return x[geo.crop : geo.n_tokens - geo.crop]


def _soft_clip(x: tf.Tensor, limit: float) -> tf.Tensor:
    return tf.clip_by_value(x, 0.0, limit) + tf.sqrt(tf.nn.relu(x - limit))


def _mask(
    peaks_center: tf.Tensor, peak_u: tf.Tensor, block_u: tf.Tensor, geo: Geometry, rate: float
) -> tf.Tensor:
    inner = peaks_center[geo.crop : geo.n_tokens - geo.crop]
    centres = tf.cast(tf.where(inner > 0)[:, 0], tf.int32)
    n = tf.shape(centres)[0]
    rank = tf.minimum(tf.cast(tf.floor(peak_u * tf.cast(n, tf.float32)), tf.int32), n - 1)
    centre = tf.gather(tf.concat([centres, [0]], 0), tf.maximum(rank, 0))  # no peak: masked below by n > 0
    positions = tf.range(geo.n_tokens)
    start = centre - geo.mask_bins // 2 + geo.crop
    stop = centre + geo.mask_bins // 2 + geo.crop + 1
    peak = tf.cast((positions >= start) & (positions < stop) & (n > 0), tf.float32)
    blocks = tf.repeat(tf.cast(block_u < tf.cast(rate, tf.float32), tf.float32), geo.mask_bins)
    blocks = tf.pad(blocks, [[geo.crop, geo.crop]])
    return tf.maximum(peak, blocks)


def augment(
    parsed: dict[str, tf.Tensor], draws: dict[str, Any], geo: Geometry, rate: float
) -> dict[str, tf.Tensor]:
    """Parsed example (or ``data.h5`` row) + draws -> ``sequence`` int32 codes, ``atac``, ``mask``,
    ``target``, ``motif`` (and ``rna``, the expression target, when the example has it)."""
    shift = tf.cast(draws["shift"], tf.int32)
    codes = tf.cast(parsed["sequence"][shift : shift + geo.input_length], tf.int32)
    atac = tf.reshape(tf.cast(parsed["atac"], tf.float32), [-1]) + tf.cast(draws["noise"], tf.float32)
    target = _soft_clip(tf.reduce_sum(tf.reshape(atac, [geo.n_tokens, geo.tiling]), axis=1), 2000.0)
    target = target[geo.crop : geo.n_tokens - geo.crop]
    corrupt = tf.cast(draws.get("corrupt", 0), tf.float32)
    rate = rate * (1.0 + 2.0 * corrupt)  # upstream's corrupted examples: triple the block mask rate
    mask = _mask(parsed["peaks_center"], tf.cast(draws["peak_u"], tf.float32), draws["block_u"], geo, rate)
    tiled = tf.repeat(mask, geo.tiling)
    masked = atac * (1.0 - tiled)
    if geo.mask_noise:
        chunks = tf.reshape(atac, [geo.n_chunks, geo.scramble_bins])
        masked = masked + tf.reshape(tf.gather(chunks, tf.cast(draws["scramble"], tf.int32)), [-1]) * tiled
    if geo.log_atac:
        masked = tf.math.log1p(masked)
    masked = _soft_clip(masked, 150.0)
    mask = mask[geo.crop : geo.n_tokens - geo.crop]
    if_rc = tf.cast(draws["rev_comp"], tf.bool)
    codes = tf.cond(
        if_rc, lambda: tf.gather(tf.constant([3, 2, 1, 0, 4]), tf.reverse(codes, [0])), lambda: codes
    )
    tracks = {"atac": masked, "target": target, "mask": mask}
    if "rna" in parsed:
        tracks["rna"] = rna_target(parsed["rna"], geo)
    tracks = {k: tf.cond(if_rc, lambda t=t: tf.reverse(t, [0]), lambda t=t: t) for k, t in tracks.items()}
    if not geo.use_atac:
        tracks["atac"] = tf.cast(draws["random_atac"], tf.float32)
    if not geo.use_seq:
        codes = tf.cast(draws["random_codes"], tf.int32)
    motif = tf.cast(parsed["motif_activity"], tf.float32)
    motif = (motif - tf.reduce_min(motif)) / (tf.reduce_max(motif) - tf.reduce_min(motif))
    if "motif_noise" in draws:
        motif = motif + tf.cast(draws["motif_noise"], tf.float32)
    if not geo.use_motif_activity:
        motif = tf.zeros_like(motif)
    return {"sequence": codes, **tracks, "motif": motif}


def tf_draws(g: tf.random.Generator, geo: Geometry) -> dict[str, tf.Tensor]:
    """Draws with the distributions of :func:`draws.draw`, from a stateful TF generator."""
    drawn = {
        "shift": g.uniform([], 0, geo.n_shifts, dtype=tf.int32),
        "rev_comp": g.uniform([], 0, 2, dtype=tf.int32),
        "peak_u": g.uniform([]),
        "block_u": g.uniform([geo.n_blocks]),
        "noise": tf.abs(g.normal([geo.atac_length], NOISE_MEAN, NOISE_STD)),
        "corrupt": g.uniform([], 0, geo.corrupt_rate, dtype=tf.int32) == 0 if geo.corrupt_rate else 0,
        "motif_noise": tf.abs(g.normal([geo.n_motifs], 0.0, geo.motif_noise)) if geo.motif_noise else 0.0,
    }
    if geo.mask_noise:
        drawn["scramble"] = tf.argsort(g.uniform([geo.n_chunks]))
    if not geo.use_atac:
        drawn["random_atac"] = g.uniform([geo.atac_length], 0.0, 150.0)
    if not geo.use_seq:
        drawn["random_codes"] = g.uniform([geo.input_length], 0, 4, dtype=tf.int32)
    return drawn


def model_inputs(example: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(one-hot sequence (L, 4), ATAC (La, 1), motif (n_motifs,))`` for the Keras model."""
    sequence = tf.one_hot(example["sequence"], 5)[..., :4]
    return sequence, example["atac"][..., None], example["motif"]


def make_dataset(
    data_dir: Path,
    split: str,
    cell_type: str,
    geo: Geometry,
    rate: float,
    batch_size: int,
    seed: int,
    rna: bool = False,
) -> tf.data.Dataset:
    """Batches of ``((sequence, atac, motif), (target, mask))`` with fresh draws for every example;
    with ``rna`` the targets are ``(target, mask, rna)`` (fine-tuning)."""
    g = tf.random.Generator.from_seed(seed)
    ds = tf.data.TFRecordDataset(str(record_path(data_dir, split, cell_type)), compression_type=COMPRESSION)
    keys = ("target", "mask", "rna") if rna else ("target", "mask")

    def prepare(record: tf.Tensor) -> tuple[tuple[tf.Tensor, ...], tuple[tf.Tensor, ...]]:
        example = augment(parse(record, geo, rna), tf_draws(g, geo), geo, rate)
        return model_inputs(example), tuple(example[k] for k in keys)

    return ds.map(prepare).batch(batch_size).prefetch(tf.data.AUTOTUNE)
