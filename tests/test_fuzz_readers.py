"""Bounded fuzzing of the TF-free readers: TFRecord/Example/TensorProto, TF checkpoints, Keras HDF5.

Each fuzz test mutates valid seed files (byte flips, overwrites, truncations, insertions, deletions) and
asserts that the reader either succeeds or raises one of the library's own errors (``Tf2LightningError``)
within a per-example time limit. Checksums stop most random damage early, so the checkpoint fuzzers also
repair the checksums after mutating (``fix_*_crc``) to reach the parsers behind them. Seeds of the
checkpoint and Keras readers are written by TensorFlow in a child process; this process never imports it.
"""

from __future__ import annotations

import contextlib
import signal
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tfside import run_tf
from tf2lightning.core import protowire
from tf2lightning.core.keras_h5 import read_keras_h5
from tf2lightning.core.tf_checkpoint import (
    masked_crc32c,
    parse_object_graph,
    read_layer_variables,
    read_optimizer_variables,
    read_tf_checkpoint,
)
from tf2lightning.core.tfrecord import (
    encode_example,
    encode_tensor,
    iter_records,
    parse_example,
    parse_tensor,
)
from tf2lightning.core.tfrecord import masked_crc32c as record_crc
from tf2lightning.errors import Tf2LightningError

PER_EXAMPLE_SECONDS = 5.0
FUZZ = settings(
    max_examples=120,
    deadline=None,  # no wall-clock deadline: the per-example CPU-time guard below bounds each example
    database=None,
    derandomize=True,  # the same examples in CI every time, so the run time is bounded and reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Hang(Exception):
    """A reader ran past the per-example time limit."""


# The guard catches hangs, not slowness, so it counts this process's CPU time (``ITIMER_PROF``: user +
# system, all threads), which other processes competing for the cores do not inflate; a reader that loops
# forever burns CPU and trips it. A wall-clock backstop, WALL_FACTOR times longer, catches a reader stuck
# without using CPU.
WALL_FACTOR = 20


@contextlib.contextmanager
def time_limit(seconds: float = PER_EXAMPLE_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in this (main) thread if the body uses more than ``seconds`` of CPU time (or
    ``WALL_FACTOR * seconds`` of wall-clock time)."""

    def expire(signum: int, frame: object) -> None:
        used = f"{seconds} s of CPU" if signum == signal.SIGPROF else f"{seconds * WALL_FACTOR} s"
        raise Hang(f"reader still running after {used}")

    timers = (
        (signal.SIGPROF, signal.ITIMER_PROF, seconds),
        (signal.SIGALRM, signal.ITIMER_REAL, seconds * WALL_FACTOR),
    )
    previous = {sig: signal.signal(sig, expire) for sig, _, _ in timers}
    for _, timer, limit in timers:
        signal.setitimer(timer, limit)
    try:
        yield
    finally:
        for sig, timer, _ in timers:
            signal.setitimer(timer, 0)
            signal.signal(sig, previous[sig])


def must_fail_cleanly(read: Callable[[], object], seconds: float = PER_EXAMPLE_SECONDS) -> None:
    """Run ``read``: success and the library's own errors pass; any other exception or a hang fails."""
    with time_limit(seconds), contextlib.suppress(Tf2LightningError):
        read()


def test_the_guard_stops_a_reader_that_loops_forever() -> None:
    def spin() -> None:
        while True:
            pass

    with pytest.raises(Hang, match="of CPU"):
        must_fail_cleanly(spin, seconds=0.2)


# ------------------------------------------------------------------------------------------ mutations


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` after 1..max_ops random edits: flip, overwrite, insert, delete, truncate."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite" and data:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


@st.composite
def same_length_mutated(draw: st.DrawFn, seed: bytes, start: int, end: int) -> bytes:
    """``seed`` with 1..4 flips or overwrites inside ``[start, end)`` only (offsets elsewhere stay valid)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(start, end - 1))
        if draw(st.booleans()):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            data[pos] = draw(st.integers(0, 255))
    return bytes(data)


# -------------------------------------------------------------------------------------------- TFRecord

EXAMPLES = [
    {"domain": [b"example.com"], "label": np.array([3], np.int64)},
    {"seq": [b"ACGT", b""], "track": np.array([0.5, -1.0, np.inf], np.float32), "n": np.array([-1, 2**40])},
]
TENSORS = [
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array([[1, -2]], np.int64),
    np.array([b"ab", b""], dtype=object),
    np.float16(0.5),
]


def framed(records: list[bytes]) -> bytes:
    out = b""
    for data in records:
        length = struct.pack("<Q", len(data))
        out += length + struct.pack("<I", record_crc(length)) + data + struct.pack("<I", record_crc(data))
    return out


TFRECORD_SEED = framed([encode_example(ex) for ex in EXAMPLES])


def read_tfrecord(path: Path, compression: str | None) -> None:
    for record in iter_records(path, compression):
        parse_example(record)


@pytest.mark.parametrize("compression", [None, "GZIP", "ZLIB"])
def test_fuzz_tfrecord_file(tmp_path: Path, compression: str | None) -> None:
    seed_path = tmp_path / "seed.tfrecord"
    from tf2lightning.core.tfrecord import write_records

    write_records(seed_path, [encode_example(ex) for ex in EXAMPLES], compression)
    seed = seed_path.read_bytes()
    target = tmp_path / "fuzz.tfrecord"

    @FUZZ
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        target.write_bytes(data)
        must_fail_cleanly(lambda: read_tfrecord(target, "auto"))
        must_fail_cleanly(lambda: read_tfrecord(target, compression))

    check()


@FUZZ
@given(data=st.one_of(*(mutated(encode_example(ex)) for ex in EXAMPLES)))
def test_fuzz_parse_example(data: bytes) -> None:
    must_fail_cleanly(lambda: parse_example(data))


@FUZZ
@given(data=st.one_of(*(mutated(encode_tensor(t)) for t in TENSORS)))
def test_fuzz_parse_tensor(data: bytes) -> None:
    must_fail_cleanly(lambda: parse_tensor(data))


@FUZZ
@given(length=st.integers(0, 2**64 - 1), tail=st.binary(max_size=32))
def test_fuzz_tfrecord_length_field_with_valid_crc(tmp_path_factory, length: int, tail: bytes) -> None:
    """A length field whose CRC matches (a crafted file) may claim any size: no huge allocation, no hang."""
    header = struct.pack("<Q", length)
    path = tmp_path_factory.mktemp("len") / "x.tfrecord"
    path.write_bytes(header + struct.pack("<I", record_crc(header)) + tail)
    must_fail_cleanly(lambda: list(iter_records(path, None)))


# ---------------------------------------------------------------------------------- TF checkpoint, Keras

BUILD_SEEDS = """
import sys
import numpy as np, tensorflow as tf, keras
from keras import layers
keras.utils.set_random_seed(0)
out = sys.argv[1]
inp = keras.Input((6,), dtype="int32")
x = layers.Embedding(5, 3, name="emb")(inp)
x = layers.Conv1D(4, 3, padding="same", name="conv")(x)
x = layers.BatchNormalization(name="bn")(x)
x = layers.GlobalAveragePooling1D()(x)
model = keras.Model(inp, layers.Dense(2, name="head")(x), name="tiny")
opt = keras.optimizers.Adam(1e-2)
model.compile(opt, "mse")
model.fit(np.random.randint(0, 5, (4, 6)).astype("int32"), np.ones((4, 2), "float32"), epochs=1, verbose=0)
tf.train.Checkpoint(model=model, optimizer=opt).write(f"{out}/ckpt/ckpt")
model.save(f"{out}/model.h5")
model.save_weights(f"{out}/model.weights.h5")
"""


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzzseeds")
    run_tf(BUILD_SEEDS, root)
    return root


def index_blocks(index: bytes) -> list[tuple[int, int]]:
    """``(offset, size)`` of every data block and the index block of a LevelDB table (valid file)."""
    footer = index[-48:]
    _, pos = protowire.read_varint(footer, 0)
    _, pos = protowire.read_varint(footer, pos)
    offset, pos = protowire.read_varint(footer, pos)
    size, _ = protowire.read_varint(footer, pos)
    blocks = [(offset, size)]
    block = index[offset : offset + size]
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    pos, end = 0, len(block) - 4 - 4 * restarts
    while pos < end:
        _, pos = protowire.read_varint(block, pos)
        unshared, pos = protowire.read_varint(block, pos)
        value_size, pos = protowire.read_varint(block, pos)
        pos += unshared
        data_offset, p = protowire.read_varint(block, pos)
        data_size, _ = protowire.read_varint(block, p)
        blocks.append((data_offset, data_size))
        pos += value_size
    return blocks


def fix_block_crcs(index: bytes, blocks: list[tuple[int, int]]) -> bytes:
    """Recompute each block trailer's masked CRC, so content mutations get past the checksum."""
    data = bytearray(index)
    for offset, size in blocks:
        end = offset + size
        if end + 5 <= len(data):
            data[end + 1 : end + 5] = struct.pack("<I", masked_crc32c(bytes(data[offset : end + 1])))
    return bytes(data)


def checkpoint_readers(prefix: Path) -> list[Callable[[], object]]:
    return [
        lambda: read_tf_checkpoint(prefix),
        lambda: read_layer_variables(prefix),
        lambda: read_optimizer_variables(prefix),
    ]


def copy_checkpoint(seeds: Path, target: Path) -> tuple[Path, Path, Path]:
    target.mkdir(exist_ok=True)
    prefix = target / "ckpt"
    index, shard = Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")
    index.write_bytes((seeds / "ckpt/ckpt.index").read_bytes())
    shard.write_bytes((seeds / "ckpt/ckpt.data-00000-of-00001").read_bytes())
    return prefix, index, shard


def test_fuzz_checkpoint_files(seeds: Path, tmp_path: Path) -> None:
    """Raw damage to the .index or the .data shard."""
    prefix, index, shard = copy_checkpoint(seeds, tmp_path / "raw")
    originals = {index: index.read_bytes(), shard: shard.read_bytes()}

    @FUZZ
    @given(which=st.sampled_from([index, shard]), data=st.data())
    def check(which: Path, data: st.DataObject) -> None:
        for path, seed in originals.items():
            path.write_bytes(data.draw(mutated(seed)) if path == which else seed)
        for read in checkpoint_readers(prefix):
            must_fail_cleanly(read)

    check()


def test_fuzz_checkpoint_index_behind_crc(seeds: Path, tmp_path: Path) -> None:
    """Damage inside the index's blocks with their CRCs repaired: reaches the table and entry parsers."""
    prefix, index, _ = copy_checkpoint(seeds, tmp_path / "crc")
    seed = index.read_bytes()
    blocks = index_blocks(seed)
    start, end = min(o for o, _ in blocks), max(o + s for o, s in blocks)

    @FUZZ
    @given(data=same_length_mutated(seed, start, end))
    def check(data: bytes) -> None:
        index.write_bytes(fix_block_crcs(data, blocks))
        for read in checkpoint_readers(prefix):
            must_fail_cleanly(read)

    check()


def test_fuzz_object_graph(seeds: Path) -> None:
    """The object graph proto behind its string-tensor CRC (parsed directly)."""
    from tf2lightning.core.tf_checkpoint import OBJECT_GRAPH_KEY, _read_entries, read_bundle_index

    index = read_bundle_index(seeds / "ckpt/ckpt")
    graph = _read_entries(index, [OBJECT_GRAPH_KEY])[OBJECT_GRAPH_KEY].reshape(-1)[0]

    @FUZZ
    @given(data=mutated(graph))
    def check(data: bytes) -> None:
        must_fail_cleanly(lambda: parse_object_graph(data))

    check()


# libhdf5 takes a few seconds (allocating the claimed size) to reject a damaged global-heap reference of a
# variable-length string attribute (found by this fuzzer: a flipped byte in ``model_config``). It ends in a
# clean FormatError, so the guard allows more time and the run is shorter to stay within the time budget.
H5_SECONDS = 30.0
H5_FUZZ = settings(FUZZ, max_examples=40)


@pytest.mark.parametrize("name", ["model.h5", "model.weights.h5"])
def test_fuzz_keras_h5(seeds: Path, tmp_path: Path, name: str) -> None:
    seed = (seeds / name).read_bytes()
    target = tmp_path / name

    @H5_FUZZ
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        target.write_bytes(data)
        must_fail_cleanly(lambda: read_keras_h5(target), H5_SECONDS)

    check()


def test_seeds_are_valid(seeds: Path) -> None:
    """The fuzzers start from files the readers accept (else they would only test the first check)."""
    assert "conv/kernel" in read_layer_variables(seeds / "ckpt/ckpt")
    assert sorted(read_keras_h5(seeds / "model.h5")) == sorted(read_keras_h5(seeds / "model.weights.h5"))
    assert parse_example(iter_records_from(TFRECORD_SEED)[0])["domain"] == [b"example.com"]


def iter_records_from(data: bytes) -> list[bytes]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.tfrecord"
        path.write_bytes(data)
        return list(iter_records(path, None))
