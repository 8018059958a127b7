"""Import a llama.cpp GGUF file (llama.cpp, Ollama, LM Studio) into an mlx-lm folder.

The only LLM weights reachable offline here are GGUF files, often K-quantized,
which ``mlx.core.load`` cannot read. The ``gguf`` package (from llama.cpp) reads
the file and dequantizes every tensor type to NumPy; this module maps the result
onto what ``mlx_lm.load`` expects: an HF-style ``config.json``, float
``model*.safetensors`` with HF parameter names, and ``tokenizer.json`` +
``tokenizer_config.json`` rebuilt from the GGUF vocabulary, merges and chat
template.

Two llama.cpp conventions matter. GGUF lists dimensions innermost first, but the
``gguf`` reader already hands arrays over in NumPy order, so a matrix arrives as
[out, in] like an HF weight. And ``convert_hf_to_gguf.py`` interleaves the rows
of the Q and K projections of ``llama`` models (its ``LlamaModel.permute``) for
llama.cpp's rotary kernel; mlx-lm's rotary embedding wants HF's order, so those
rows are put back. Qwen2 and Qwen3 are stored unpermuted.
"""

from __future__ import annotations

import importlib
import json
import logging
import mmap
import re
import shutil
import struct
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import mlx.core as mx
import numpy as np
from gguf.quants import dequantize
from mlx.utils import tree_flatten
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers import processors as post_processors
from tokenizers.models import BPE
from tqdm import tqdm

from juno.errors import JunoError
from juno.models import store

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("qwen2", "qwen3", "llama")

_MX_DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32}

# Weights go into safetensors files of at most this size, so that only one
# file's worth of float weights is held in memory while writing.
_SHARD_BYTES = 2 * 1024**3

_HF_ARCHITECTURES = {
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "llama": "LlamaForCausalLM",
}

# llama.cpp tensor names -> HF names (see gguf.constants.MODEL_TENSOR / TENSOR_NAMES).
_GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_BLOCK_TENSORS = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")

# Chat models end a turn with one of these; llama.cpp stops on them even when the
# file's eos id names another token (it auto-detects its "EOT" token by text).
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>")

# Pre-tokenizer regexes from llama.cpp's llama-vocab.cpp (the HF originals).
_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class _PreTokenizer:
    """How one family of byte-level BPE vocabularies splits text before merging."""

    regex: str | None  # None: GPT-2's own split, built into the ByteLevel step
    split_digits: bool = False  # every digit alone, before the GPT-2 split
    nfc: bool = False  # NFC-normalize first (Qwen's HF tokenizer does)
    ignore_merges: bool = False  # a word that is a whole token skips the merges
    add_bos: bool = False  # llama.cpp's default when the file does not say
    clean_spaces: bool = True  # HF's clean_up_tokenization_spaces


_QWEN2 = _PreTokenizer(_QWEN2_REGEX, nfc=True, clean_spaces=False)
_LLAMA3 = _PreTokenizer(_LLAMA3_REGEX, ignore_merges=True, add_bos=True)
_GPT2 = _PreTokenizer(None)
_STARCODER = _PreTokenizer(None, split_digits=True, clean_spaces=False)

# tokenizer.ggml.pre values, grouped as llama.cpp's llama-vocab.cpp groups them.
_PRE_TOKENIZERS = {
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"), _QWEN2),
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "falcon3"), _LLAMA3),
    **dict.fromkeys(("default", "gpt-2", "gpt2", "phi-2", "mpt", "olmo"), _GPT2),
    **dict.fromkeys(("smollm", "starcoder", "refact", "codeshell"), _STARCODER),
}


# ---------------------------------------------------------------- header scan


@dataclass(frozen=True)
class _TensorInfo:
    name: str
    qtype: str  # GGMLQuantizationType name, e.g. "Q4_K"
    n_elements: int


@dataclass(frozen=True)
class _Header:
    metadata: dict[str, Any]  # scalars and strings only; arrays map to their length
    tensors: list[_TensorInfo]


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


def _scan_header(src: Path) -> _Header:
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


def _parse_header(cur: _Cursor, size: int) -> _Header:
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
        tensors.append(_TensorInfo(tname, qtype.name, n_elements))
    return _Header(metadata, tensors)


def gguf_summary(src: Path) -> dict[str, Any]:
    """Architecture, name, quantization types and parameter count of a GGUF file.

    Reads only the header: a fraction of a second even for a 150k-token vocabulary.
    Keys: ``architecture``, ``name``, ``file_type`` (e.g. ``MOSTLY_Q4_K_M``),
    ``quantization`` ({type: tensor count}), ``parameter_count``,
    ``context_length``. Raises JunoError for a file that is not a readable GGUF.
    """
    header = _scan_header(Path(src))
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


# ---------------------------------------------------------------- metadata


class _Meta:
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


def _open_reader(src: Path) -> gguf.GGUFReader:
    try:
        return gguf.GGUFReader(src)
    except (ValueError, KeyError, IndexError, OverflowError, UnicodeDecodeError) as e:
        # _scan_header passed, so this is corruption the scan cannot see.
        raise JunoError(f"{src.name}: corrupt GGUF file ({e})") from None


def _llama3_rope_factors(
    theta: float, head_dim: int, factor: float, low: float, high: float, original: int
) -> np.ndarray:
    """The per-frequency divisors convert_hf_to_gguf.py stores as rope_freqs for Llama 3."""
    wavelen = 2 * np.pi * theta ** (np.arange(0, head_dim, 2) / head_dim)
    smooth = (original / wavelen - low) / (high - low)
    medium = 1 / ((1 - smooth) / factor + smooth)
    return np.where(
        wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, medium)
    )


def _rope_scaling(
    meta: _Meta, arch: str, rope_freqs: np.ndarray | None, theta: float, head_dim: int
) -> dict[str, Any] | None:
    """HF rope_scaling from GGUF keys, or from the rope_freqs tensor of Llama 3.x."""
    if rope_freqs is not None:
        factors = rope_freqs.astype(np.float64).ravel()
        if np.allclose(factors, 1.0):
            return None
        # GGUF keeps only the resulting divisors; Llama 3.1/3.2 all use these settings.
        scaling = {
            "rope_type": "llama3",
            "factor": float(factors.max()),
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
        params = list(scaling.values())[1:]
        expected = _llama3_rope_factors(theta, head_dim, *params)
        if expected.shape != factors.shape or not np.allclose(expected, factors, rtol=1e-3):
            raise JunoError(f"{meta.name}: rope_freqs do not match Llama 3 RoPE scaling")
        return scaling
    kind = meta.get(f"{arch}.rope.scaling.type", "none")
    if kind == "none":
        return None
    factor = float(meta.require(f"{arch}.rope.scaling.factor"))
    if kind == "linear":
        return {"rope_type": "linear", "factor": factor}
    if kind == "yarn":
        original = meta.require(f"{arch}.rope.scaling.original_context_length")
        return {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original}
    raise JunoError(f"{meta.name}: RoPE scaling '{kind}' is not supported (linear, yarn)")


def _model_config(
    meta: _Meta, arch: str, vocab_rows: int, tied: bool, rope_freqs: np.ndarray | None
) -> dict[str, Any]:
    """The HF config.json that mlx-lm's ModelArgs for ``arch`` reads."""
    hidden = int(meta.require(f"{arch}.embedding_length"))
    heads = int(meta.require(f"{arch}.attention.head_count"))
    head_dim = int(meta.get(f"{arch}.attention.key_length", hidden // heads))
    rotary_dims = int(meta.get(f"{arch}.rope.dimension_count", head_dim))
    if rotary_dims != head_dim:
        raise JunoError(f"{meta.name}: partial rotary embeddings are not supported")
    if arch == "qwen2" and head_dim * heads != hidden:
        raise JunoError(f"{meta.name}: qwen2 with head size {head_dim} is not supported")
    # llama.cpp's defaults for keys a converter may leave out.
    theta = float(meta.get(f"{arch}.rope.freq_base", 10000.0))
    context = int(meta.get(f"{arch}.context_length", 4096))
    config: dict[str, Any] = {
        "architectures": [_HF_ARCHITECTURES[arch]],
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": int(meta.require(f"{arch}.block_count")),
        "intermediate_size": int(meta.require(f"{arch}.feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.require(f"{arch}.attention.layer_norm_rms_epsilon")),
        "rope_theta": theta,
        "vocab_size": vocab_rows,
        "max_position_embeddings": context,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
    }
    scaling = _rope_scaling(meta, arch, rope_freqs, theta, head_dim)
    if scaling is not None:
        config["rope_scaling"] = scaling
    return config


# ---------------------------------------------------------------- weights


@dataclass(frozen=True)
class _Weight:
    """One output parameter: where it comes from and whether to un-permute it."""

    hf_name: str
    tensor: Any  # gguf.ReaderTensor
    unpermute_heads: int = 0  # llama Q/K: undo llama.cpp's row interleave over this many heads

    def load(self) -> np.ndarray:
        t = self.tensor
        array = dequantize(t.data, t.tensor_type)
        # Dequantized arrays take NumPy's order: GGUF dims reversed, i.e. [out, in].
        array = array.reshape(tuple(reversed(t.shape.tolist())))
        if self.unpermute_heads:
            n = self.unpermute_heads
            # Inverse of convert_hf_to_gguf.py's LlamaModel.permute:
            # reshape(n, 2, rows/n/2, ...).swapaxes(1, 2).
            array = (
                array.reshape(n, array.shape[0] // n // 2, 2, *array.shape[1:])
                .swapaxes(1, 2)
                .reshape(array.shape)
            )
        return array


def _plan_weights(reader: gguf.GGUFReader, name: str, arch: str, config: dict) -> list[_Weight]:
    """Map every GGUF tensor to its HF name; an unknown tensor is an error."""
    weights, unknown = [], []
    for t in reader.tensors:
        base, _, kind = t.name.rpartition(".")
        if t.name == "rope_freqs.weight":
            continue  # folded into config["rope_scaling"]
        if base in _GLOBAL_TENSORS and kind == "weight":
            weights.append(_Weight(f"{_GLOBAL_TENSORS[base]}.weight", t))
            continue
        m = _BLOCK_RE.fullmatch(t.name)
        if m is None or m.group(2) not in _BLOCK_TENSORS:
            unknown.append(t.name)
            continue
        layer, part, kind = m.groups()
        heads = 0
        if arch == "llama" and part == "attn_q":
            heads = config["num_attention_heads"]
        elif arch == "llama" and part == "attn_k":
            heads = config["num_key_value_heads"]
        weights.append(_Weight(f"model.layers.{layer}.{_BLOCK_TENSORS[part]}.{kind}", t, heads))
    if unknown:
        shown = ", ".join(unknown[:4]) + (", ..." if len(unknown) > 4 else "")
        raise JunoError(f"{name}: tensors an {arch} model does not have: {shown}")
    return weights


def _check_against_model(name: str, config: dict, weights: list[_Weight]) -> None:
    """Compare names and shapes with the mlx-lm model, so the folder is sure to load.

    The model is built but never evaluated, so its random init costs no memory.
    """
    arch = importlib.import_module(f"mlx_lm.models.{config['model_type']}")
    model = arch.Model(arch.ModelArgs.from_dict(config))
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    got = {w.hf_name: tuple(reversed(w.tensor.shape.tolist())) for w in weights}
    missing = sorted(expected.keys() - got.keys())
    extra = sorted(got.keys() - expected.keys())
    if missing or extra:
        what = (
            f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(extra[:3])}"
        )
        raise JunoError(f"{name}: tensors do not fit a {config['model_type']} model ({what})")
    for key, shape in expected.items():
        if got[key] != shape:
            raise JunoError(f"{name}: {key} has shape {got[key]}, the config implies {shape}")


def _write_weights(folder: Path, weights: list[_Weight], dtype: mx.Dtype, desc: str) -> int:
    """Dequantize, convert and save, one safetensors shard at a time; return bytes."""
    itemsize = dtype.size
    shards: list[list[_Weight]] = [[]]
    shard_bytes = 0
    for w in weights:
        nbytes = w.tensor.n_elements * itemsize
        if shards[-1] and shard_bytes + nbytes > _SHARD_BYTES:
            shards.append([])
            shard_bytes = 0
        shards[-1].append(w)
        shard_bytes += nbytes

    n = len(shards)
    files = (
        ["model.safetensors"]
        if n == 1
        else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    )
    weight_map = {}
    with tqdm(total=len(weights), desc=desc, unit="tensor", disable=None) as bar:
        for file, shard in zip(files, shards, strict=True):
            arrays = {}
            for w in shard:
                arrays[w.hf_name] = mx.array(w.load()).astype(dtype)
                # Convert now, so the float32 copy is freed before the next tensor.
                mx.eval(arrays[w.hf_name])
                weight_map[w.hf_name] = file
                bar.update()
            mx.save_safetensors(str(folder / file), arrays, metadata={"format": "mlx"})
    total = sum(w.tensor.n_elements for w in weights) * itemsize
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _TokenizerFiles:
    tokenizer: Tokenizer
    config: dict[str, Any]  # tokenizer_config.json
    bos_id: int | None
    eos_ids: list[int]
    pad_id: int | None


def _post_processor(
    bos: str | None, bos_id: int | None, eos: str | None, eos_id: int | None
) -> post_processors.PostProcessor:
    """ByteLevel offsets, plus a template adding BOS/EOS when the file asks for them."""
    byte_level = post_processors.ByteLevel(trim_offsets=False)
    if bos is None and eos is None:
        return byte_level

    def sequence(seq: str, type_id: int) -> str:
        parts = [bos] * (bos is not None) + [f"${seq}"] + [eos] * (eos is not None)
        return " ".join(f"{p}:{type_id}" for p in parts)

    specials = [(t, i) for t, i in ((bos, bos_id), (eos, eos_id)) if t is not None]
    template = post_processors.TemplateProcessing(
        single=sequence("A", 0),
        pair=f"{sequence('A', 0)} {sequence('B', 1)}",
        special_tokens=specials,
    )
    return post_processors.Sequence([byte_level, template])


def _build_tokenizer(meta: _Meta, context: int) -> _TokenizerFiles:
    """A ``tokenizers`` byte-level BPE equal to the one llama.cpp builds from the file."""
    model = meta.require("tokenizer.ggml.model")
    if model != "gpt2":
        raise JunoError(
            f"{meta.name}: tokenizer '{model}' is not supported (only byte-level BPE, 'gpt2')"
        )
    pre_name = meta.get("tokenizer.ggml.pre")
    if pre_name is None:
        log.warning("%s: no tokenizer.ggml.pre, using GPT-2's split", meta.name)
        pre_name = "default"
    pre = _PRE_TOKENIZERS.get(pre_name)
    if pre is None:
        raise JunoError(
            f"{meta.name}: pre-tokenizer '{pre_name}' is not supported "
            f"({', '.join(sorted(_PRE_TOKENIZERS))})"
        )

    tokens: list[str] = meta.require("tokenizer.ggml.tokens")
    types: list[int] = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)  # NORMAL
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != len(tokens) or len(types) != len(tokens):
        raise JunoError(f"{meta.name}: corrupt vocabulary (duplicate tokens or token types)")
    merges = []
    for merge in meta.get("tokenizer.ggml.merges") or []:
        # As llama.cpp: the separator is the first space after the first character.
        cut = merge.find(" ", 1)
        if cut < 0:
            raise JunoError(f"{meta.name}: malformed merge {merge!r}")
        merges.append((merge[:cut], merge[cut + 1 :]))

    try:
        tokenizer = Tokenizer(
            BPE(vocab, merges, fuse_unk=False, byte_fallback=False, ignore_merges=pre.ignore_merges)
        )
    except Exception as e:  # tokenizers raises plain Exception for merges not in the vocab
        raise JunoError(f"{meta.name}: vocabulary and merges do not fit ({e})") from None
    if pre.nfc:
        tokenizer.normalizer = normalizers.NFC()
    steps = []
    if pre.regex is not None:
        steps.append(pre_tokenizers.Split(Regex(pre.regex), behavior="isolated", invert=False))
    if pre.split_digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre.regex is None))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()

    # Control tokens are special (dropped by skip_special_tokens); user-defined ones
    # (Qwen's <tool_call>) match whole but decode as text. Both match before BPE.
    special_types = (gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN)
    special = [t for t, k in zip(tokens, types, strict=True) if k in special_types]
    user = [t for t, k in zip(tokens, types, strict=True) if k == gguf.TokenType.USER_DEFINED]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])

    def token_id(key: str) -> int | None:
        i = meta.get(f"tokenizer.ggml.{key}")
        return i if i is not None and 0 <= i < len(tokens) else None

    bos_id, eos_id = token_id("bos_token_id"), token_id("eos_token_id")
    pad_id, unk_id = token_id("padding_token_id"), token_id("unknown_token_id")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", pre.add_bos)) and bos_id is not None
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False)) and eos_id is not None
    tokenizer.post_processor = _post_processor(
        tokens[bos_id] if add_bos else None, bos_id, tokens[eos_id] if add_eos else None, eos_id
    )

    ends = [eos_id, token_id("eot_token_id")]
    ends += [vocab[t] for t in _END_OF_TURN_TOKENS if t in special]
    eos_ids = list(dict.fromkeys(i for i in ends if i is not None))

    def text(i: int | None) -> str | None:
        return None if i is None else tokens[i]

    config: dict[str, Any] = {
        # The generic fast tokenizer loads tokenizer.json as it is (transformers 4 and 5).
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": text(bos_id),
        "eos_token": text(eos_id),
        "pad_token": text(pad_id),
        "unk_token": text(unk_id),
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": pre.clean_spaces,
        "model_max_length": context,
    }
    template_text = meta.get("tokenizer.chat_template")
    if template_text:
        config["chat_template"] = template_text
    return _TokenizerFiles(tokenizer, config, bos_id, eos_ids, pad_id)


# ---------------------------------------------------------------- import


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def import_gguf(src: Path, dest: Path, dtype: str = "float16", overwrite: bool = False) -> Path:
    """Convert a GGUF file into an mlx-lm folder at ``dest``; return ``dest``.

    Supports the qwen2, qwen3 and llama architectures with a byte-level BPE
    (``gpt2``) vocabulary, any tensor type the ``gguf`` package dequantizes
    (F32, F16, BF16, Q4_0..Q8_0, K-quants, IQ quants). ``dtype`` is the float
    type written: ``float16`` (default, half the disk), ``bfloat16`` or
    ``float32``; on the Linux CPU load with ``model.set_dtype(mx.float32)`` either
    way. The folder appears whole or not at all; an existing ``dest`` is only
    replaced with ``overwrite=True``. Raises JunoError for files that are not
    GGUF, truncated or corrupt, or of an unsupported architecture or tokenizer.
    """
    src, dest = Path(src), Path(dest)
    start = time.perf_counter()
    if dtype not in _MX_DTYPES:
        raise JunoError(f"unknown dtype {dtype!r}: choose one of {', '.join(_MX_DTYPES)}")
    if dest.exists() and not overwrite:
        raise JunoError(f"{dest} already exists (pass overwrite to replace it)")
    if dest.exists() and not dest.is_dir():
        raise JunoError(f"{dest} exists and is not a folder")
    if not src.is_file():
        raise JunoError(f"{src}: no such file")

    header = _scan_header(src)
    arch = header.metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise JunoError(
            f"{src.name}: architecture '{arch}' is not supported "
            f"({', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    reader = _open_reader(src)
    meta = _Meta(reader, src.name)
    by_name = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in by_name:
        raise JunoError(f"{src.name}: token_embd.weight is missing")
    vocab_rows = int(by_name["token_embd.weight"].shape[-1])  # GGUF dims: [hidden, vocab]
    # Without an output matrix llama.cpp reuses the embeddings; so does mlx-lm when tied.
    tied = "output.weight" not in by_name
    rope_freqs = by_name.get("rope_freqs.weight")
    rope_factors = None if rope_freqs is None else _Weight("rope_freqs", rope_freqs).load()
    config = _model_config(meta, arch, vocab_rows, tied, rope_factors)
    weights = _plan_weights(reader, src.name, arch, config)
    _check_against_model(src.name, config, weights)
    tok = _build_tokenizer(meta, config["max_position_embeddings"])
    if tok.tokenizer.get_vocab_size() > vocab_rows:
        raise JunoError(f"{src.name}: more tokens than embedding rows ({vocab_rows})")
    config.update(bos_token_id=tok.bos_id, eos_token_id=tok.eos_ids, torch_dtype=dtype)
    generation = {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_ids}
    if tok.pad_id is not None:
        generation["pad_token_id"] = tok.pad_id

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is not secret
        _write_weights(tmp, weights, _MX_DTYPES[dtype], src.name)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        tok.tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(tok.config, indent=2, ensure_ascii=False) + "\n"
        )
        store.replace_folder(tmp, dest)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise JunoError(f"{dest}: cannot write the imported model ({e})") from None
        raise
    log.info(
        "imported %s -> %s: %s, %d layers, vocab %d, %s, %.1f MB in %.1f s",
        src,
        dest,
        arch,
        config["num_hidden_layers"],
        vocab_rows,
        dtype,
        _folder_bytes(dest) / 1e6,
        time.perf_counter() - start,
    )
    return dest
