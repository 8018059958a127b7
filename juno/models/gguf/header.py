"""Reading a GGUF file: a fast, checked scan of its header, and typed metadata access."""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from juno.errors import JunoError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    qtype: str  # GGMLQuantizationType name, e.g. "Q4_K"
    n_elements: int


@dataclass(frozen=True)
class Header:
    metadata: dict[str, Any]  # scalars and strings only; arrays map to their length
    tensors: list[TensorInfo]


# GGUF value type id -> struct format (strings and arrays are handled apart).
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Bounds-checked little-endian reads over the mapped file."""

    def __init__(self, buf: mmap.mmap, name: str) -> None:
        self.buf = buf
        self.name = name
        self.pos = 0

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise JunoError(
                f"{self.name}: truncated GGUF file (header cut at byte {len(self.buf)} "
                f"while reading {what})"
            )
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str:
        n = self.unpack("Q", what)
        if self.pos + n > len(self.buf):
            raise JunoError(
                f"{self.name}: truncated or corrupt GGUF file ({what} of {n} bytes at byte "
                f"{self.pos}, file has {len(self.buf)})"
            )
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise JunoError(f"{self.name}: corrupt GGUF file ({what} is not UTF-8)") from None

    def skip_strings(self, count: int, what: str) -> None:
        # A tight loop: vocabularies hold 100k+ strings, this keeps the scan fast.
        buf, pos, unpack_from = self.buf, self.pos, struct.unpack_from
        try:
            for _ in range(count):
                pos += 8 + unpack_from("<Q", buf, pos)[0]
        except struct.error:
            pos = len(buf) + 1
        if pos > len(buf):
            raise JunoError(
                f"{self.name}: truncated or corrupt GGUF file ({what} runs past byte {len(buf)})"
            )
        self.pos = pos

    def value(self, vtype: int, what: str) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY:
            itype, count = self.unpack("I", what), self.unpack("Q", what)
            if itype == _STRING:
                self.skip_strings(count, what)
            elif itype in _SCALARS:
                # Fixed-size items: jump over them, the bounds check comes later.
                self.pos += struct.calcsize("<" + _SCALARS[itype]) * count
            else:
                for _ in range(count):
                    self.value(itype, what)
            return count
        raise JunoError(f"{self.name}: corrupt GGUF file (unknown value type {vtype} in {what})")


def scan_header(src: Path) -> Header:
    """Read metadata scalars and tensor infos, checking that all tensor data is there.

    Much faster than ``gguf.GGUFReader`` (which builds NumPy views of every token
    string), and precise about what is wrong with a bad file.
    """
    try:
        with src.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise JunoError(f"{src.name}: not a GGUF file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse_header(_Cursor(buf, src.name), len(buf))
    except OSError as e:
        raise JunoError(f"{src}: cannot read ({e.strerror})") from None


def _parse_header(cur: _Cursor, size: int) -> Header:
    name = cur.name
    cur.pos = 4
    version = cur.unpack("I", "version")
    if version & 0xFFFF == 0:
        raise JunoError(f"{name}: big-endian GGUF files are not supported")
    if version not in (2, 3):
        raise JunoError(f"{name}: GGUF version {version} is not supported (2, 3)")
    n_tensors, n_kv = cur.unpack("Q", "tensor count"), cur.unpack("Q", "metadata count")
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key {i}")
        metadata[key] = cur.value(cur.unpack("I", key), key)

    raw_tensors = []
    for i in range(n_tensors):
        tname = cur.string(f"tensor name {i}")
        n_dims = cur.unpack("I", tname)
        if n_dims > 8:
            raise JunoError(f"{name}: corrupt GGUF file ({tname} has {n_dims} dimensions)")
        dims = [cur.unpack("Q", tname) for _ in range(n_dims)]
        type_id, offset = cur.unpack("I", tname), cur.unpack("Q", tname)
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
        except ValueError:
            raise JunoError(f"{name}: corrupt GGUF file ({tname} has type id {type_id})") from None
        raw_tensors.append((tname, qtype, int(np.prod(dims, dtype=np.int64)), offset))

    alignment = metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT)
    data_start = -(-cur.pos // alignment) * alignment
    tensors = []
    for tname, qtype, n_elements, offset in raw_tensors:
        block, type_bytes = gguf.GGML_QUANT_SIZES[qtype]
        end = data_start + offset + n_elements // block * type_bytes
        if end > size:
            raise JunoError(
                f"{name}: truncated GGUF file (tensor {tname} ends at byte {end}, "
                f"the file has {size})"
            )
        tensors.append(TensorInfo(tname, qtype.name, n_elements))
    return Header(metadata, tensors)


def gguf_summary(src: Path) -> dict[str, Any]:
    """Architecture, name, quantization types and parameter count of a GGUF file.

    Reads only the header: a fraction of a second even for a 150k-token vocabulary.
    Keys: ``architecture``, ``name``, ``file_type`` (e.g. ``MOSTLY_Q4_K_M``),
    ``quantization`` ({type: tensor count}), ``parameter_count``,
    ``context_length``. Raises JunoError for a file that is not a readable GGUF.
    """
    header = scan_header(Path(src))
    meta = header.metadata
    arch = meta.get("general.architecture")
    file_type = meta.get("general.file_type")
    try:
        file_type = gguf.LlamaFileType(file_type).name if file_type is not None else None
    except ValueError:
        file_type = str(file_type)
    return {
        "architecture": arch,
        "name": meta.get("general.name"),
        "file_type": file_type,
        "quantization": dict(Counter(t.qtype for t in header.tensors)),
        "parameter_count": sum(t.n_elements for t in header.tensors),
        "context_length": meta.get(f"{arch}.context_length"),
    }


class Meta:
    """Typed access to a GGUFReader's metadata with one-line errors."""

    def __init__(self, reader: gguf.GGUFReader, name: str) -> None:
        self.reader = reader
        self.name = name

    def get(self, key: str, default: Any = None) -> Any:
        field = self.reader.get_field(key)
        return default if field is None else field.contents()

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise JunoError(f"{self.name}: metadata {key} is missing")
        return value


def open_reader(src: Path) -> gguf.GGUFReader:
    """``gguf.GGUFReader`` over a file ``scan_header`` has passed."""
    try:
        return gguf.GGUFReader(src)
    except (ValueError, KeyError, IndexError, OverflowError, UnicodeDecodeError) as e:
        # scan_header passed, so this is corruption the scan cannot see.
        raise JunoError(f"{src.name}: corrupt GGUF file ({e})") from None
