"""TFRecord files, ``tf.train.Example`` and ``TensorProto`` without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

where ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)``. The whole stream may be
compressed as a gzip file ("GZIP") or a zlib stream ("ZLIB").
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO

import google_crc32c
import numpy as np

from tf2lightning.core import fast_proto
from tf2lightning.core import protowire as pw
from tf2lightning.core.atomic import atomic_path
from tf2lightning.errors import FormatError

__all__ = [
    "RecordCRCError",
    "encode_example",
    "encode_tensor",
    "frame_record",
    "iter_indexed_records",
    "iter_records",
    "masked_crc32c",
    "parse_example",
    "parse_tensor",
    "write_records",
]

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_READ_SIZE = 1 << 16
_MAX_READ = 1 << 24


class RecordCRCError(FormatError):
    """A record's data failed its CRC while its framing was intact: the reader can go on after it."""

    def __init__(self, message: str, path: str, index: int) -> None:
        super().__init__(message)
        self.path = path
        self.index = index


def masked_crc32c(data: bytes | memoryview) -> int:
    """The CRC32C of ``data`` in TFRecord's masked form."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------- framing


def _normalise_compression(compression: str | None) -> str | None:
    if compression is None or compression == "":
        return None
    name = compression.upper()
    if name in ("GZIP", "ZLIB", "AUTO"):
        return name
    if name == "NONE":
        return None
    raise ValueError(f"unknown TFRecord compression {compression!r}; expected None, 'GZIP', 'ZLIB' or 'auto'")


def _detect_compression(head: bytes) -> str | None:
    """Guess the compression from the first bytes of a file (an intact record header wins)."""
    if len(head) >= _HEADER.size:
        _, crc = _HEADER.unpack_from(head)
        if masked_crc32c(head[:8]) == crc:
            return None
    if head[:2] == b"\x1f\x8b":
        return "GZIP"
    if len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
        return "ZLIB"
    return None


class _ZlibReader(io.RawIOBase):
    """A readable stream that inflates a zlib stream (concatenated streams are read one after another)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._pending = b""
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            if self._inflate.eof:
                rest = self._inflate.unused_data
                if not rest and not (rest := self._raw.read(_READ_SIZE)):
                    return 0
                self._inflate = zlib.decompressobj()
                self._pending = self._inflate.decompress(rest, len(buffer))
                continue
            chunk = self._inflate.unconsumed_tail or self._raw.read(_READ_SIZE)
            if not chunk:
                if not self._started:
                    return 0  # an empty file holds no records
                raise EOFError("zlib stream ended before its end-of-stream marker")
            self._started = True
            self._pending = self._inflate.decompress(chunk, len(buffer))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes (fewer at the end of the stream), read in bounded pieces.

    A corrupt length field may claim exabytes; reading piecewise finds the end of the file instead of
    asking for that much memory at once.
    """
    parts, need = [], size
    while need:
        chunk = stream.read(min(need, _MAX_READ))
        if not chunk:
            break
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


def iter_records(
    path: str | os.PathLike[str],
    compression: str | None = "auto",
    *,
    on_bad_data: Callable[[RecordCRCError], None] | None = None,
) -> Iterator[bytes]:
    """Yield the records of a TFRecord file, verifying both CRCs of each.

    ``compression`` is None, "GZIP", "ZLIB" or "auto" (detected from the file's first bytes). Problems raise
    :class:`FormatError` naming the file and the record index. A record whose data CRC fails while its framing
    is intact raises :class:`RecordCRCError`; with ``on_bad_data`` the error is passed to that callback
    instead (which may re-raise) and the record is skipped.
    """
    for _, data in iter_indexed_records(path, compression, on_bad_data=on_bad_data):
        yield data


def iter_indexed_records(
    path: str | os.PathLike[str],
    compression: str | None = "auto",
    *,
    on_bad_data: Callable[[RecordCRCError], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Like :func:`iter_records`, yielding ``(record index in the file, data)``: indices survive skips."""
    name = os.fspath(path)
    mode = _normalise_compression(compression)
    try:
        raw = open(name, "rb")  # noqa: SIM115 - closed below, after the generator finishes
    except OSError as exc:
        raise FormatError(f"{name}: cannot open TFRecord file ({exc.strerror})") from None
    with raw:
        if mode == "AUTO":
            mode = _detect_compression(raw.read(_HEADER.size))
            raw.seek(0)
        if mode == "GZIP":
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb")
        elif mode == "ZLIB":
            stream = io.BufferedReader(_ZlibReader(raw), _READ_SIZE)
        else:
            stream = raw
        what = {"GZIP": "gzip", "ZLIB": "zlib"}.get(mode or "", "file")
        try:
            yield from _iter_framed(stream, name, what, on_bad_data)
        finally:
            if stream is not raw:
                stream.close()


def _iter_framed(
    stream: IO[bytes], name: str, what: str, on_bad_data: Callable[[RecordCRCError], None] | None
) -> Iterator[tuple[int, bytes]]:
    index = 0
    while True:
        try:
            header = _read_exact(stream, _HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise FormatError(
                    f"{name}: record {index}: truncated record header ({len(header)} of {_HEADER.size} bytes)"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise FormatError(f"{name}: record {index}: bad length CRC (length field reads {length})")
            body = _read_exact(stream, length + _FOOTER.size)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"{name}: record {index}: corrupt or truncated {what} stream: {exc}") from exc
        if len(body) < length + _FOOTER.size:
            raise FormatError(
                f"{name}: record {index}: truncated record (expected {length} data bytes and a 4-byte CRC, "
                f"found {len(body)} bytes)"
            )
        data = body[:length]
        (data_crc,) = _FOOTER.unpack_from(body, length)
        if masked_crc32c(data) != data_crc:
            error = RecordCRCError(
                f"{name}: record {index}: bad data CRC ({length} bytes; stored {data_crc:#010x}, "
                f"computed {masked_crc32c(data):#010x})",
                name,
                index,
            )
            if on_bad_data is None:
                raise error
            on_bad_data(error)
        else:
            yield index, data
        index += 1


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(data))
    return length + _FOOTER.pack(masked_crc32c(length)) + data + _FOOTER.pack(masked_crc32c(data))


def write_records(
    path: str | os.PathLike[str], records: Iterable[bytes], compression: str | None = None
) -> int:
    """Write ``records`` as a TFRecord file (None, "GZIP" or "ZLIB"), atomically; return the record count."""
    mode = _normalise_compression(compression)
    if mode == "AUTO":
        raise ValueError("write_records needs an explicit compression: None, 'GZIP' or 'ZLIB'")
    count = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if mode == "GZIP":
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                for record in records:
                    out.write(frame_record(record))
                    count += 1
        elif mode == "ZLIB":
            deflate = zlib.compressobj()
            for record in records:
                raw.write(deflate.compress(frame_record(record)))
                count += 1
            raw.write(deflate.flush())
        else:
            for record in records:
                raw.write(frame_record(record))
                count += 1
    return count


# ------------------------------------------------------------------------------------- tf.train.Example

Feature = list[bytes] | np.ndarray


def _native(dtype: str) -> np.dtype:
    return np.dtype(dtype).newbyteorder("=")


def _fixed32_array(values: list[int | bytes], dtype: str) -> np.ndarray:
    """A repeated 4-byte field (packed bytes or single FIXED32 ints) as a numpy array, bit-exact."""
    parts = []
    for value in values:
        if isinstance(value, int):
            if value >= 1 << 32:
                raise FormatError(f"value {value} in a 4-byte field does not fit in 4 bytes")
            parts.append(np.array([value], dtype="<u4").view(dtype))
        else:
            if len(value) % 4:
                raise FormatError("packed 4-byte field length is not a multiple of 4")
            parts.append(np.frombuffer(value, dtype=dtype))
    return np.concatenate(parts).astype(_native(dtype)) if parts else np.zeros(0, _native(dtype))


def _fixed64_array(values: list[int | bytes], dtype: str) -> np.ndarray:
    parts = []
    for value in values:
        if isinstance(value, int):
            parts.append(np.array([value], dtype="<u8").view(dtype))
        else:
            if len(value) % 8:
                raise FormatError("packed 8-byte field length is not a multiple of 8")
            parts.append(np.frombuffer(value, dtype=dtype))
    return np.concatenate(parts).astype(_native(dtype)) if parts else np.zeros(0, _native(dtype))


def _int64_array(values: list[int | bytes]) -> np.ndarray:
    return np.array([pw.to_signed64(v) for v in pw.packed_varints(values)], dtype=np.int64)


def _parse_feature(buf: bytes) -> Feature:
    kinds = pw.parse(buf)
    if 1 in kinds:  # BytesList
        return pw.messages(pw.parse(pw.first_bytes(kinds, 1)), 1)
    if 2 in kinds:  # FloatList
        return _fixed32_array(pw.parse(pw.first_bytes(kinds, 2)).get(1, []), "<f4")
    if 3 in kinds:  # Int64List
        return _int64_array(pw.parse(pw.first_bytes(kinds, 3)).get(1, []))
    return []


def parse_example(buf: bytes) -> dict[str, Feature]:
    """Decode a serialized ``tf.train.Example``.

    BytesList -> ``list[bytes]``, FloatList -> float32 array, Int64List -> int64 array (packed or not);
    a feature with no kind set reads as an empty list. Decoded by the compiled protobuf runtime where it
    accepts the buffer (:mod:`~tf2lightning.core.fast_proto`), else (and for every error) by the pure decoder.
    """
    parse = fast_proto.example_parser()
    if parse is not None:
        try:
            message = parse(buf)
        except (fast_proto.DecodeError, ValueError, TypeError):
            pass
        else:
            return {name: _fast_feature(feature) for name, feature in message.features.feature.items()}
    return _parse_example_pure(buf)


def _fast_feature(feature: object) -> Feature:
    kind = feature.WhichOneof("kind")  # type: ignore[attr-defined]
    if kind == "bytes_list":
        return list(feature.bytes_list.value)  # type: ignore[attr-defined]
    if kind == "float_list":
        return np.array(feature.float_list.value, dtype=np.float32)  # type: ignore[attr-defined]
    if kind == "int64_list":
        return np.array(feature.int64_list.value, dtype=np.int64)  # type: ignore[attr-defined]
    return []


def _parse_example_pure(buf: bytes) -> dict[str, Feature]:
    out: dict[str, Feature] = {}
    for features in pw.parse(buf).get(1, []):
        if not isinstance(features, bytes):
            raise FormatError("Example.features is not a message")
        for entry in pw.parse(features).get(1, []):
            if not isinstance(entry, bytes):
                raise FormatError("Features.feature entry is not a message")
            fields = pw.parse(entry)
            key = pw.first(fields, 1, b"")
            value = pw.first(fields, 2, b"")
            if not isinstance(key, bytes) or not isinstance(value, bytes):
                raise FormatError("malformed Features.feature map entry")
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"feature name {key!r} is not UTF-8") from None
            try:
                out[name] = _parse_feature(value)
            except FormatError as exc:
                raise FormatError(f"feature {key!r}: {exc}") from exc
    return out


def _encode_feature(name: str, value: object) -> bytes:
    if isinstance(value, bytes | str):
        value = [value]
    if isinstance(value, list | tuple) and all(isinstance(v, bytes | str) for v in value) and value:
        items = b"".join(pw.encode_field(1, v.encode() if isinstance(v, str) else v) for v in value)
        return pw.encode_field(1, items)
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return pw.encode_field(2, pw.encode_field(1, array.astype("<f4").ravel().tobytes()))
    if array.dtype.kind in "iub":
        packed = b"".join(pw.encode_varint(int(v)) for v in array.astype(np.int64).ravel())
        return pw.encode_field(3, pw.encode_field(1, packed))
    raise ValueError(f"feature {name!r}: cannot encode values of dtype {array.dtype}")


def encode_example(features: Mapping[str, object]) -> bytes:
    """Serialize a ``tf.train.Example`` from ``{name: values}``.

    bytes/str (or a list of them) -> BytesList; float arrays -> FloatList (float32); int/bool -> Int64List.
    An empty list encodes as an empty FloatList (TF's parser accepts it for any dtype as "no values").
    """
    entries = b"".join(
        pw.encode_field(1, pw.encode_field(1, name.encode()) + pw.encode_field(2, _encode_feature(name, v)))
        for name, v in features.items()
    )
    return pw.encode_field(1, entries)


# ------------------------------------------------------------------------------------------ TensorProto

# DataType enum value -> (name, numpy dtype, TensorProto value field number).
_DTYPES: dict[int, tuple[str, str, int]] = {
    1: ("DT_FLOAT", "<f4", 5),
    2: ("DT_DOUBLE", "<f8", 6),
    3: ("DT_INT32", "<i4", 7),
    4: ("DT_UINT8", "u1", 7),
    5: ("DT_INT16", "<i2", 7),
    6: ("DT_INT8", "i1", 7),
    7: ("DT_STRING", "O", 8),
    8: ("DT_COMPLEX64", "<c8", 9),
    9: ("DT_INT64", "<i8", 10),
    10: ("DT_BOOL", "?", 11),
    17: ("DT_UINT16", "<u2", 7),
    18: ("DT_COMPLEX128", "<c16", 12),
    19: ("DT_HALF", "<f2", 13),
    22: ("DT_UINT32", "<u4", 16),
    23: ("DT_UINT64", "<u8", 17),
}
_KNOWN_UNSUPPORTED = {
    11: "DT_QINT8",
    12: "DT_QUINT8",
    13: "DT_QINT32",
    14: "DT_BFLOAT16",
    15: "DT_QINT16",
    16: "DT_QUINT16",
    20: "DT_RESOURCE",
    21: "DT_VARIANT",
}
# A TensorProto may hold fewer values than its shape (they are padded); a crafted shape must not make a
# few bytes of proto allocate gigabytes.
MAX_PADDED_ELEMENTS = 1 << 28
_ENUM_OF: dict[np.dtype, int] = {np.dtype(np_dtype): enum for enum, (_, np_dtype, _) in _DTYPES.items()}


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    fields = pw.parse(buf)
    if pw.first_int(fields, 3, 0):
        raise FormatError("tensor shape has unknown rank")
    dims = []
    for dim in pw.messages(fields, 2):
        size = pw.to_signed64(pw.first_int(pw.parse(dim), 1, 0))
        if size < 0:
            raise FormatError(f"tensor shape has an unknown dimension ({size})")
        dims.append(size)
    return tuple(dims)


def _typed_values(enum: int, np_dtype: str, values: list[int | bytes]) -> np.ndarray:
    """Decode the TensorProto repeated field that holds values of this dtype."""
    if enum == 7:
        if not all(isinstance(v, bytes) for v in values):
            raise FormatError("TensorProto.string_val holds a non-bytes value")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    if enum == 1:
        return _fixed32_array(values, "<f4")
    if enum == 8:
        return _fixed32_array(values, "<f4").view(np.complex64)
    if enum == 2:
        return _fixed64_array(values, "<f8")
    if enum == 18:
        return _fixed64_array(values, "<f8").view(np.complex128)
    ints = pw.packed_varints(values)
    if enum == 19:  # half_val: int32 fields holding the float16 bit pattern
        return np.array(ints, dtype=np.uint64).astype(np.uint16).view(np.float16)
    if enum in (22, 23):  # unsigned fields: no sign extension
        return np.array(ints, dtype=np.uint64).astype(np_dtype)
    if enum == 10:
        return np.array(ints, dtype=np.uint64) != 0
    return np.array([pw.to_signed64(v) for v in ints], dtype=np.int64).astype(np_dtype)


def parse_tensor(buf: bytes) -> np.ndarray:
    """Decode a serialized ``TensorProto`` (``tf.io.serialize_tensor``) with its own dtype and shape.

    Reads ``tensor_content`` when present, else the typed value field; as in TensorFlow, a value field
    shorter than the shape is padded with its last value (one value broadcasts) and an empty one means zeros.
    Strings come back as an object array of ``bytes``.
    """
    fast = _parse_tensor_content(buf)
    if fast is not None:
        return fast
    fields = pw.parse(buf)
    enum = pw.first_int(fields, 1, 0)
    if enum not in _DTYPES:
        name = _KNOWN_UNSUPPORTED.get(enum, "an unknown DataType")
        raise FormatError(f"tensor dtype {enum} ({name}) has no supported numpy equivalent")
    name, np_dtype, value_field = _DTYPES[enum]
    shape = _parse_shape(pw.first_bytes(fields, 2, b""))
    count = math.prod(shape)
    content = pw.first_bytes(fields, 4, b"")
    if content and enum != 7:
        itemsize = np.dtype(np_dtype).itemsize
        if len(content) != count * itemsize:
            raise FormatError(
                f"{name} tensor_content has {len(content)} bytes; shape {list(shape)} needs "
                f"{count * itemsize}"
            )
        return np.frombuffer(content, dtype=np_dtype).astype(_native(np_dtype)).reshape(shape)
    values = _typed_values(enum, np_dtype, fields.get(value_field, []))
    if len(values) > count:
        raise FormatError(f"{name} tensor has {len(values)} values; shape {list(shape)} holds {count}")
    if len(values) < count:
        if count > MAX_PADDED_ELEMENTS:
            raise FormatError(
                f"{name} tensor of shape {list(shape)} holds {len(values)} values; padding it to {count} "
                f"elements exceeds the limit of {MAX_PADDED_ELEMENTS}"
            )
        fill = values[-1] if len(values) else (b"" if enum == 7 else 0)
        values = np.concatenate([values, np.full(count - len(values), fill, dtype=values.dtype)])
    return values.reshape(shape)


_CONTENT_DTYPES: dict[int, np.dtype] = {
    enum: np.dtype(np_dtype) for enum, (name, np_dtype, _) in _DTYPES.items() if name != "DT_STRING"
}


def _parse_tensor_content(buf: bytes) -> np.ndarray | None:
    """The common case on the compiled runtime: a numeric ``tensor_content`` of the shape's size; None
    for anything else (the pure decoder then decides, and words any error)."""
    parse = fast_proto.tensor_parser()
    if parse is None:
        return None
    try:
        message = parse(buf)
    except (fast_proto.DecodeError, ValueError, TypeError):
        return None
    dtype = _CONTENT_DTYPES.get(message.dtype)
    content = message.tensor_content
    if dtype is None or not content or message.tensor_shape.unknown_rank:
        return None
    shape = [dim.size for dim in message.tensor_shape.dim]
    count = 1
    for size in shape:
        if size < 0:
            return None
        count *= size
    if len(content) != count * dtype.itemsize:
        return None
    array = np.frombuffer(content, dtype=dtype).reshape(shape)  # read-only view of the message: copy
    return array.copy() if dtype.isnative else array.astype(dtype.newbyteorder("="))


def encode_tensor(array: np.ndarray | Sequence[object] | object) -> bytes:
    """Serialize an array as a ``TensorProto`` in the layout ``tf.io.serialize_tensor`` uses.

    Numbers go to ``tensor_content`` (little-endian); bytes/str arrays to ``string_val``.
    """
    arr = np.asarray(array)
    if arr.dtype.kind in "OSU":
        enum = 7
    else:
        enum = _ENUM_OF.get(arr.dtype.newbyteorder("<"), 0)
        if not enum:
            raise ValueError(f"cannot encode a tensor of dtype {arr.dtype}")
    dims = b"".join(pw.encode_field(2, pw.encode_field(1, d) if d else b"") for d in arr.shape)
    out = pw.encode_field(1, enum) + pw.encode_field(2, dims)
    if enum == 7:
        for item in arr.ravel():
            out += pw.encode_field(8, item.encode() if isinstance(item, str) else bytes(item))
    elif arr.size:
        out += pw.encode_field(4, arr.astype(_DTYPES[enum][1]).tobytes())
    return out
