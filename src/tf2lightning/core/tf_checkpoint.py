"""Read TensorFlow checkpoints (tensor bundles) without TensorFlow: numpy, protowire and google_crc32c only.

A checkpoint ``PREFIX`` is ``PREFIX.index`` (a LevelDB-style table mapping tensor names to
``BundleEntryProto``; the empty key holds the ``BundleHeaderProto``) plus ``PREFIX.data-NNNNN-of-MMMMM``
shards holding the raw little-endian tensor bytes. Each entry's ``crc32c`` is the *masked* CRC-32C of the
bytes as stored (checked against files written by TF 2.21). String tensors are stored as varint lengths,
a masked CRC of the lengths (each as uint32), then the bytes; the entry CRC covers lengths-as-uint32, the
length CRC and the bytes.

bfloat16 tensors are returned as ``ml_dtypes.bfloat16`` when ``ml_dtypes`` is importable (it ships with
TensorFlow and JAX), else as their raw bits in ``np.uint16``; :func:`list_tf_checkpoint` always reports the
TF dtype name.

What TF 2.21 / Keras 3 writes (measured, see tests/test_tf_checkpoint.py)
--------------------------------------------------------------------------
* ``tf.train.Checkpoint(model=m, optimizer=opt)``: keys are positional object-graph paths, e.g.
  ``model/_operations/3/forward_layer/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE`` (functional) or
  ``model/_functional/_operations/2/_kernel/...`` (Sequential). Dense/Conv kernels hang under ``_kernel``
  and embeddings under ``_embeddings``.
* After ``fit``, every trainable variable is stored once, under ``optimizer/_trainable_variables/<i>``;
  only non-trainable ones (BatchNorm moving stats) keep a ``model/...`` key. The graph still links the
  layer to the variable node, so walking from the model node finds every model variable.
* The compiled model tracks its optimizer (``model/optimizer`` edge); Adam moments live in
  ``optimizer/_variables/<i>`` with ``full_name`` like ``adam/conv1d_kernel_momentum``. Keras 3 declares
  no ``slot_variables`` (Keras 2 did).
* ``full_name`` is the Keras variable path for functional models (``conv1d/kernel``) and Sequential models
  (``<model name>/conv1d_1/kernel``), the same strings a legacy ``.h5`` stores as ``weight_names``. For
  subclassed models it is only ``<model name>/<variable name>`` (``clair/kernel`` for every kernel), so the
  layer path has to come from the graph (attribute names) instead.
* Keras 3 subclassed models: layers kept in a plain Python list attribute are not in the checkpoint at all.

Canonical layer-variable names (:func:`read_layer_variables`) are Keras paths *relative to the model*:
the variable's ``full_name`` cut to its last *k* components, where *k* counts the naming hops on the graph
path from the model node (list containers and Sequential's inner ``_functional`` do not count). When
``full_name`` cannot supply that (too short, or names collide, as in Keras 3 subclassed models) every
variable is named by its graph path instead, leading underscores dropped (``conv1/kernel``,
``mha/query_dense/kernel``).
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import google_crc32c
import numpy as np

from tf2lightning.core import protowire
from tf2lightning.errors import FormatError

try:
    import ml_dtypes

    _BFLOAT16: np.dtype = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    _BFLOAT16 = np.dtype(np.uint16)

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
_CRC_MASK_DELTA = 0xA282EAD8
_DT_STRING = 7

# TF DataType enum -> (name, numpy dtype); None for strings.
TF_DTYPES: dict[int, tuple[str, np.dtype | None]] = {
    1: ("float32", np.dtype(np.float32)),
    2: ("float64", np.dtype(np.float64)),
    3: ("int32", np.dtype(np.int32)),
    4: ("uint8", np.dtype(np.uint8)),
    5: ("int16", np.dtype(np.int16)),
    6: ("int8", np.dtype(np.int8)),
    _DT_STRING: ("string", None),
    8: ("complex64", np.dtype(np.complex64)),
    9: ("int64", np.dtype(np.int64)),
    10: ("bool", np.dtype(np.bool_)),
    14: ("bfloat16", _BFLOAT16),
    17: ("uint16", np.dtype(np.uint16)),
    18: ("complex128", np.dtype(np.complex128)),
    19: ("float16", np.dtype(np.float16)),
    22: ("uint32", np.dtype(np.uint32)),
    23: ("uint64", np.dtype(np.uint64)),
}


@dataclass(frozen=True)
class TensorEntry:
    """One tensor's ``BundleEntryProto``: where its bytes are and what they are."""

    name: str
    dtype_code: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int

    @property
    def dtype_name(self) -> str:
        return TF_DTYPES[self.dtype_code][0]


@dataclass(frozen=True)
class BundleIndex:
    """A parsed ``.index`` file."""

    prefix: Path
    num_shards: int
    big_endian: bool
    entries: dict[str, TensorEntry]

    def shard_path(self, shard_id: int) -> Path:
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")


def masked_crc32c(data: bytes) -> int:
    """CRC-32C of ``data``, masked the way LevelDB and TF store it."""
    return mask_crc(google_crc32c.value(data))


def mask_crc(crc: int) -> int:
    """Rotate right by 15 bits and add a constant (keeps CRCs of CRCs well-behaved)."""
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- locating files


def resolve_checkpoint_prefix(path: str | Path) -> Path:
    """Turn a prefix, a ``.index`` path, a ``.data-*`` path or a directory into a checkpoint prefix.

    A directory must hold a ``checkpoint`` state file (its ``model_checkpoint_path`` is used), exactly
    one ``.index`` file, or be a SavedModel folder (``variables/variables.index``).
    """
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            try:
                text = state.read_text()
                match = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
                if not match:
                    raise FormatError(f"{state}: no model_checkpoint_path in the checkpoint state file")
                latest = Path(match.group(1).encode().decode("unicode_escape"))
            except UnicodeError as err:
                raise FormatError(f"{state}: unreadable checkpoint state file ({err})") from None
            return latest if latest.is_absolute() else path / latest
        indexes = sorted(path.glob("*.index"))
        saved_model = path / "variables" / "variables.index"
        if not indexes and saved_model.is_file():
            return saved_model.with_suffix("")  # a SavedModel folder
        if len(indexes) != 1:
            raise FormatError(
                f"{path}: expected a 'checkpoint' state file or one .index file, found {indexes}"
            )
        return indexes[0].with_suffix("")
    if path.suffix == ".index":
        return path.with_suffix("")
    data = re.fullmatch(r"(.*)\.data-\d{5}-of-\d{5}", str(path))
    if data:
        return Path(data.group(1))
    return path


# --------------------------------------------------------------------------- the .index table


def _block_handle(buf: bytes, pos: int, where: str) -> tuple[int, int, int]:
    """Decode a BlockHandle (varint offset, varint size); return offset, size and the next position."""
    try:
        offset, pos = protowire.read_varint(buf, pos)
        size, pos = protowire.read_varint(buf, pos)
    except FormatError as err:
        raise FormatError(f"{where}: bad block handle ({err})") from None
    return offset, size, pos


def _read_block(table: bytes, offset: int, size: int, where: str) -> bytes:
    """Return a table block's contents after checking its trailer (type 0 = uncompressed, masked CRC)."""
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(table):
        raise FormatError(f"{where}: block at {offset} (+{size} bytes) runs past the end of the file")
    contents = table[offset:end]
    kind = table[end]
    (stored,) = struct.unpack_from("<I", table, end + 1)
    if masked_crc32c(contents + bytes([kind])) != stored:
        raise FormatError(f"{where}: CRC mismatch in the block at offset {offset}")
    if kind != 0:
        raise FormatError(
            f"{where}: block at offset {offset} uses compression type {kind}; only 0 is supported"
        )
    return contents


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed ``(key, value)`` entries in order."""
    if len(block) < 4:
        raise FormatError(f"{where}: block of {len(block)} bytes is too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    data_end = len(block) - 4 - 4 * num_restarts
    if data_end < 0:
        raise FormatError(f"{where}: block claims {num_restarts} restart points, more than fit")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    try:
        while pos < data_end:
            shared, pos = protowire.read_varint(block, pos)
            unshared, pos = protowire.read_varint(block, pos)
            value_size, pos = protowire.read_varint(block, pos)
            if shared > len(key) or pos + unshared + value_size > data_end:
                raise FormatError(f"entry at {pos} overruns the block")
            key = key[:shared] + block[pos : pos + unshared]
            pos += unshared
            entries.append((key, block[pos : pos + value_size]))
            pos += value_size
    except FormatError as err:
        raise FormatError(f"{where}: malformed block ({err})") from None
    return entries


def _table_entries(table: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """All ``(key, value)`` pairs of a LevelDB-format table, in key order."""
    if len(table) < _FOOTER_SIZE:
        raise FormatError(f"{where}: {len(table)} bytes is too short for a table footer")
    footer = table[-_FOOTER_SIZE:]
    magic = int.from_bytes(footer[-8:], "little")
    if magic != TABLE_MAGIC:
        raise FormatError(f"{where}: bad table magic {magic:#018x}, expected {TABLE_MAGIC:#018x}")
    _, _, pos = _block_handle(footer, 0, where)  # metaindex block: unused by tensor bundles
    index_offset, index_size, _ = _block_handle(footer, pos, where)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_read_block(table, index_offset, index_size, where), where):
        offset, size, _ = _block_handle(handle, 0, where)
        entries.extend(_block_entries(_read_block(table, offset, size, where), where))
    return entries


def _parse_shape(buf: bytes, where: str) -> tuple[int, ...]:
    fields = protowire.parse(buf)
    if protowire.first_int(fields, 3, 0):
        raise FormatError(f"{where}: shape of unknown rank")
    dims = []
    for dim in protowire.messages(fields, 2):
        size = protowire.to_signed64(protowire.first_int(protowire.parse(dim), 1, 0))
        if size < 0:
            raise FormatError(f"{where}: unknown dimension in shape")
        dims.append(size)
    return tuple(dims)


def _parse_entry(name: str, value: bytes, where: str) -> TensorEntry:
    fields = protowire.parse(value)
    if fields.get(7):
        raise FormatError(f"{where}: variable {name!r} is partitioned (slices); not supported")
    return TensorEntry(
        name=name,
        dtype_code=protowire.first_int(fields, 1, 0),
        shape=_parse_shape(protowire.first_bytes(fields, 2, b""), where),
        shard_id=protowire.first_int(fields, 3, 0),
        offset=protowire.first_int(fields, 4, 0),
        size=protowire.first_int(fields, 5, 0),
        crc32c=protowire.first_int(fields, 6, 0),
    )


def read_bundle_index(path: str | Path) -> BundleIndex:
    """Parse a checkpoint's ``.index`` file (``path`` as for :func:`resolve_checkpoint_prefix`)."""
    prefix = resolve_checkpoint_prefix(path)
    index_path = Path(f"{prefix}.index")
    where = str(index_path)
    try:
        table = index_path.read_bytes()
    except OSError as err:
        raise FormatError(f"{where}: cannot read checkpoint index ({err.strerror})") from None
    num_shards, big_endian = 1, False
    entries: dict[str, TensorEntry] = {}
    for key, value in _table_entries(table, where):
        try:
            if not key:
                header = protowire.parse(value)
                num_shards = protowire.first_int(header, 1, 1)
                big_endian = protowire.first_int(header, 2, 0) == 1
                continue
            if key.startswith(b"\x00"):
                continue  # a slice of a partitioned variable; its full entry lists the slices
            name = key.decode("utf-8")
            entries[name] = _parse_entry(name, value, where)
        except (FormatError, UnicodeDecodeError) as err:
            raise FormatError(f"{where}: bad entry for {key!r}: {err}") from None
    return BundleIndex(prefix=prefix, num_shards=num_shards, big_endian=big_endian, entries=entries)


def list_tf_checkpoint(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (TF dtype name, shape)}`` for every tensor, like TF's shape and dtype maps combined."""
    index = read_bundle_index(path)
    return {
        name: (TF_DTYPES.get(e.dtype_code, (f"dtype#{e.dtype_code}", None))[0], e.shape)
        for name, e in index.entries.items()
    }


# --------------------------------------------------------------------------- the .data shards


def _decode_strings(raw: bytes, count: int, entry_crc: int, where: str) -> np.ndarray:
    """Decode and check a string tensor: varint lengths, masked CRC of the lengths, then the bytes."""
    lengths, pos = [], 0
    crc = 0
    for _ in range(count):
        length, pos = protowire.read_varint(raw, pos)
        lengths.append(length)
        width = 4 if length <= 0xFFFFFFFF else 8
        crc = google_crc32c.extend(crc, length.to_bytes(width, "little"))
    if pos + 4 > len(raw):
        raise FormatError(f"{where}: string tensor truncated before its length checksum")
    (stored,) = struct.unpack_from("<I", raw, pos)
    if mask_crc(crc) != stored:
        raise FormatError(f"{where}: string length checksum mismatch")
    crc = google_crc32c.extend(crc, raw[pos : pos + 4])
    pos += 4
    out = np.empty(count, dtype=object)
    for i, length in enumerate(lengths):
        if pos + length > len(raw):
            raise FormatError(f"{where}: string element {i} runs past the tensor's bytes")
        out[i] = raw[pos : pos + length]
        pos += length
    if pos != len(raw) or mask_crc(google_crc32c.extend(crc, raw[len(raw) - sum(lengths) :])) != entry_crc:
        raise FormatError(f"{where}: CRC-32C mismatch (stored {entry_crc:#010x})")
    return out


def _decode_tensor(entry: TensorEntry, raw: bytes, big_endian: bool, where: str) -> np.ndarray:
    if entry.dtype_code not in TF_DTYPES:
        raise FormatError(f"{where}: unsupported TF dtype enum {entry.dtype_code}")
    count = math.prod(entry.shape)
    dtype = TF_DTYPES[entry.dtype_code][1]
    if dtype is None:
        return _decode_strings(raw, count, entry.crc32c, where).reshape(entry.shape)
    if count * dtype.itemsize != len(raw):
        raise FormatError(
            f"{where}: {len(raw)} bytes for shape {entry.shape} of {entry.dtype_name}, "
            f"expected {count * dtype.itemsize}"
        )
    if big_endian:
        dtype = dtype.newbyteorder(">")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)


def _read_entries(index: BundleIndex, names: list[str]) -> dict[str, np.ndarray]:
    """Read and CRC-check the named tensors, opening each shard once."""
    by_shard: dict[int, list[TensorEntry]] = {}
    for name in names:
        entry = index.entries[name]
        by_shard.setdefault(entry.shard_id, []).append(entry)
    out: dict[str, np.ndarray] = {}
    for shard_id, entries in sorted(by_shard.items()):
        shard = index.shard_path(shard_id)
        try:
            handle = shard.open("rb")
        except OSError as err:
            raise FormatError(
                f"{shard}: cannot open data shard for {entries[0].name!r} ({err.strerror})"
            ) from None
        with handle:
            shard_size = os.fstat(handle.fileno()).st_size
            for entry in sorted(entries, key=lambda e: e.offset):
                where = f"{shard}: variable {entry.name!r}"
                if entry.offset + entry.size > shard_size:
                    raise FormatError(
                        f"{where}: truncated shard, the tensor's {entry.size} bytes at offset {entry.offset} "
                        f"run past its end ({shard_size} bytes)"
                    )
                handle.seek(entry.offset)
                raw = handle.read(entry.size)
                if len(raw) != entry.size:
                    raise FormatError(f"{where}: truncated shard, got {len(raw)} of {entry.size} bytes")
                if entry.dtype_code != _DT_STRING and masked_crc32c(raw) != entry.crc32c:
                    raise FormatError(f"{where}: CRC-32C mismatch (stored {entry.crc32c:#010x})")
                out[entry.name] = _decode_tensor(entry, raw, index.big_endian, where)
    return {name: out[name] for name in names}


def read_tf_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint except the object graph, keyed as TF's checkpoint reader keys them.

    ``path`` is a prefix, a ``.index`` path, or a directory with a ``checkpoint`` state file (the latest
    checkpoint is read). Values are bit-identical to ``tf.train.load_checkpoint(prefix).get_tensor``.
    """
    index = read_bundle_index(path)
    return _read_entries(index, sorted(n for n in index.entries if n != OBJECT_GRAPH_KEY))


# --------------------------------------------------------------------------- the object graph


@dataclass(frozen=True)
class GraphNode:
    """One ``TrackableObject``: named edges to children, saved tensors, and slot-variable references."""

    children: tuple[tuple[str, int], ...]
    attributes: tuple[tuple[str, str, str], ...]  # (name, full_name, checkpoint_key)
    slot_variables: tuple[tuple[int, str, int], ...]  # (original node, slot name, slot node)

    def variable(self) -> tuple[str, str] | None:
        """``(full_name, checkpoint_key)`` of the node's VARIABLE_VALUE, if it is a variable."""
        for name, full_name, key in self.attributes:
            if name == "VARIABLE_VALUE":
                return full_name, key
        return None


def _text(fields: protowire.Fields, number: int) -> str:
    """A string field as text; bad UTF-8 or a number in its place is a FormatError."""
    try:
        return protowire.first_bytes(fields, number).decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"field {number} is not UTF-8 text ({err.reason})") from None


def parse_object_graph(buf: bytes) -> list[GraphNode]:
    """Decode a serialized ``TrackableObjectGraph`` (node 0 is the checkpoint's root object)."""
    nodes = []
    for raw in protowire.messages(protowire.parse(buf), 1):
        fields = protowire.parse(raw)
        children = []
        for ref in protowire.messages(fields, 1):
            f = protowire.parse(ref)
            children.append((_text(f, 2), protowire.first_int(f, 1, 0)))
        attributes = []
        for attr in protowire.messages(fields, 2):
            f = protowire.parse(attr)
            attributes.append((_text(f, 1), _text(f, 2), _text(f, 3)))
        slots = []
        for slot in protowire.messages(fields, 3):
            f = protowire.parse(slot)
            slots.append((protowire.first_int(f, 1, 0), _text(f, 2), protowire.first_int(f, 3, 0)))
        nodes.append(GraphNode(tuple(children), tuple(attributes), tuple(slots)))
    return nodes


def read_object_graph(path: str | Path) -> list[GraphNode]:
    """The checkpoint's object graph (raises FormatError for name-based TF1 checkpoints that lack one)."""
    index = read_bundle_index(path)
    if OBJECT_GRAPH_KEY not in index.entries:
        raise FormatError(f"{index.prefix}.index: no {OBJECT_GRAPH_KEY}; not an object-based checkpoint")
    graph = _read_entries(index, [OBJECT_GRAPH_KEY])[OBJECT_GRAPH_KEY]
    if graph.dtype != object or graph.size != 1:
        raise FormatError(f"{index.prefix}.index: {OBJECT_GRAPH_KEY} is not one string")
    raw = graph.reshape(-1)[0]
    try:
        nodes = parse_object_graph(raw)
    except (FormatError, UnicodeDecodeError) as err:
        raise FormatError(f"{index.prefix}.index: bad {OBJECT_GRAPH_KEY}: {err}") from None
    for node in nodes:
        for local_name, child in node.children:
            if not 0 <= child < len(nodes):
                raise FormatError(f"{index.prefix}.index: edge {local_name!r} points to missing node {child}")
        for original, slot_name, slot in node.slot_variables:
            if not (0 <= original < len(nodes) and 0 <= slot < len(nodes)):
                raise FormatError(
                    f"{index.prefix}.index: slot variable {slot_name!r} refers to missing node "
                    f"{original if not 0 <= original < len(nodes) else slot}"
                )
    return nodes


# Edges that lead from a model to training state, not to layers.
NON_LAYER_EDGES = frozenset(
    {"optimizer", "save_counter", "_compile_metrics", "_compile_loss", "_loss_tracker", "keras_api"}
)
# Edges into wrapper objects that add no Keras name scope (Sequential's inner Functional).
TRANSPARENT_EDGES = frozenset({"_functional"})
# Edges into flat lists of a model's variables (a Keras 2 SavedModel's root has them): followed last.
AGGREGATE_EDGES = frozenset({"variables", "trainable_variables", "non_trainable_variables"})


def _is_list_node(node: GraphNode) -> bool:
    """A tracked list: only numerically named children and nothing saved of its own."""
    return bool(node.children) and not node.attributes and all(n.isdigit() for n, _ in node.children)


def _walk_variables(nodes: list[GraphNode], start: int, skip: frozenset[str]) -> dict[int, list[str]]:
    """Breadth-first from ``start``: for each variable node, the first edge path that reaches it.

    Edges in ``AGGREGATE_EDGES`` are followed only after every other path is exhausted, so a variable
    keeps its layer path when a flat variable list reaches it too."""
    paths: dict[int, list[str]] = {start: []}
    queue = deque([start])
    deferred: deque[tuple[int, str, int]] = deque()
    found: dict[int, list[str]] = {}
    while queue or deferred:
        if not queue:
            parent, local_name, child = deferred.popleft()
            if child not in paths:
                paths[child] = [*paths[parent], local_name]
                queue.append(child)
            continue
        node_id = queue.popleft()
        node = nodes[node_id]
        if node.variable() is not None and node_id != start:
            found[node_id] = paths[node_id]
        for local_name, child in node.children:
            if local_name in skip or child in paths:
                continue
            if local_name in AGGREGATE_EDGES:
                deferred.append((node_id, local_name, child))
                continue
            paths[child] = [*paths[node_id], local_name]
            queue.append(child)
    return found


def _naming_components(nodes: list[GraphNode], start: int, path: list[str]) -> list[str]:
    """The edges of ``path`` that correspond to a Keras name-scope level (layers and the variable)."""
    kept, node_id = [], start
    for local_name in path:
        node_id = dict(nodes[node_id].children)[local_name]
        if local_name in TRANSPARENT_EDGES or _is_list_node(nodes[node_id]):
            continue
        kept.append(local_name)
    return kept


def _find_model_node(nodes: list[GraphNode], root: str | None, where: str) -> int:
    """Locate the model: the edge path ``root`` from node 0, else a ``model`` child, else the lone child."""
    if root is not None:
        node_id = 0
        for part in [p for p in root.split("/") if p]:
            children = dict(nodes[node_id].children)
            if part not in children:
                raise FormatError(f"{where}: no object {root!r} in the checkpoint (missing {part!r})")
            node_id = children[part]
        return node_id
    children = dict(nodes[0].children)
    if "model" in children:
        return children["model"]
    if any(n.startswith(("layer-", "layer_with_weights-")) for n in children):
        return 0  # Keras 2 model.save_weights(): the model is the root
    candidates = [c for n, c in nodes[0].children if n not in NON_LAYER_EDGES]
    return candidates[0] if len(candidates) == 1 else 0


def _canonical_names(nodes: list[GraphNode], start: int, found: dict[int, list[str]]) -> dict[int, str]:
    """Name each variable node by its Keras path relative to the model (see the module docstring)."""
    components = {node_id: _naming_components(nodes, start, path) for node_id, path in found.items()}
    from_full_name: dict[int, str] = {}
    for node_id, parts in components.items():
        full = [p for p in nodes[node_id].variable()[0].split("/") if p]
        if len(full) < len(parts) or not parts:
            break
        from_full_name[node_id] = "/".join(full[len(full) - len(parts) :])
    else:
        if len(set(from_full_name.values())) == len(from_full_name):
            return from_full_name
    return _graph_names(nodes, start, found)


def _graph_names(nodes: list[GraphNode], start: int, found: dict[int, list[str]]) -> dict[int, str]:
    """Name each variable node by its naming edges from the model, leading underscores dropped."""
    return {
        node_id: "/".join(p.lstrip("_") for p in _naming_components(nodes, start, path))
        for node_id, path in found.items()
    }


def _read_by_node(index: BundleIndex, nodes: list[GraphNode], named: dict[int, str]) -> dict[str, np.ndarray]:
    keys = {name: nodes[node_id].variable()[1] for node_id, name in named.items()}
    missing = sorted(k for k in keys.values() if k not in index.entries)
    if missing:
        raise FormatError(f"{index.prefix}.index: object graph refers to missing tensors {missing[:5]}")
    values = _read_entries(index, sorted(set(keys.values())))
    return {name: values[key] for name, key in sorted(keys.items())}


def read_layer_variables(
    path: str | Path, root: str | None = None, naming: Literal["auto", "graph"] = "auto"
) -> dict[str, np.ndarray]:
    """The model's variables keyed ``<layer path>/<variable name>`` (e.g. ``conv1d/kernel``).

    Found by walking the object graph from the model object, so a variable stored only under the
    optimizer's path is still found; optimizer and metric state are excluded. ``root`` is the edge path
    of the model from the checkpoint root (``"model"`` for ``tf.train.Checkpoint(model=m)``); by default
    the ``model`` child, or the root itself for Keras 2 ``save_weights`` checkpoints. ``naming="graph"``
    names every variable by its graph path (attribute names, e.g. ``LSTM1/forward_layer/cell/kernel``),
    which is what identifies a variable of a subclassed model, whatever automatic layer name Keras gave it.
    """
    index = read_bundle_index(path)
    nodes = read_object_graph(path)
    start = _find_model_node(nodes, root, f"{index.prefix}.index")
    found = _walk_variables(nodes, start, NON_LAYER_EDGES)
    if naming == "graph":
        return _read_by_node(index, nodes, _graph_names(nodes, start, found))
    return _read_by_node(index, nodes, _canonical_names(nodes, start, found))


def read_optimizer_variables(path: str | Path, root: str | None = None) -> dict[str, np.ndarray]:
    """Optimizer state (iterations, learning rate, moments, slots), keyed by ``full_name`` or graph path.

    Keras 2 slot variables are named ``<model variable name>/<slot name>``.
    """
    index = read_bundle_index(path)
    nodes = read_object_graph(path)
    start = _find_model_node(nodes, root, f"{index.prefix}.index")
    model_vars = _walk_variables(nodes, start, NON_LAYER_EDGES)
    model_names = _canonical_names(nodes, start, model_vars)
    optimizer_ids = [c for n, c in nodes[0].children + nodes[start].children if n == "optimizer"]
    named: dict[int, str] = {}
    for opt in dict.fromkeys(optimizer_ids):
        for node_id, edge_path in _walk_variables(nodes, opt, frozenset()).items():
            if node_id not in model_vars:
                named[node_id] = nodes[node_id].variable()[0] or "/".join(edge_path)
        for original, slot_name, slot_node in nodes[opt].slot_variables:
            if nodes[slot_node].variable() is not None:
                base = model_names.get(original) or nodes[original].variable()[0] or str(original)
                named[slot_node] = f"{base}/{slot_name}"
    if len(set(named.values())) != len(named):
        named = {node_id: f"{name}#{node_id}" for node_id, name in named.items()}
    return _read_by_node(index, nodes, named)
