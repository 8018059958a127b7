"""GGUF tensors -> HF-named float safetensors, checked against the mlx-lm model.

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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import mlx.core as mx
import numpy as np
from gguf.quants import dequantize
from mlx.utils import tree_flatten
from tqdm import tqdm

from juno.errors import JunoError

# Weights go into safetensors files of at most this size, so that only one
# file's worth of float weights is held in memory while writing.
SHARD_BYTES = 2 * 1024**3

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


@dataclass(frozen=True)
class Weight:
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


def plan_weights(reader: gguf.GGUFReader, name: str, arch: str, config: dict) -> list[Weight]:
    """Map every GGUF tensor to its HF name; an unknown tensor is an error."""
    weights, unknown = [], []
    for t in reader.tensors:
        base, _, kind = t.name.rpartition(".")
        if t.name == "rope_freqs.weight":
            continue  # folded into config["rope_scaling"]
        if base in _GLOBAL_TENSORS and kind == "weight":
            weights.append(Weight(f"{_GLOBAL_TENSORS[base]}.weight", t))
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
        weights.append(Weight(f"model.layers.{layer}.{_BLOCK_TENSORS[part]}.{kind}", t, heads))
    if unknown:
        shown = ", ".join(unknown[:4]) + (", ..." if len(unknown) > 4 else "")
        raise JunoError(f"{name}: tensors an {arch} model does not have: {shown}")
    return weights


def check_against_model(name: str, config: dict, weights: list[Weight]) -> None:
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


def write_weights(folder: Path, weights: list[Weight], dtype: mx.Dtype, desc: str) -> int:
    """Dequantize, convert and save, one safetensors shard at a time; return bytes."""
    itemsize = dtype.size
    shards: list[list[Weight]] = [[]]
    shard_bytes = 0
    for w in weights:
        nbytes = w.tensor.n_elements * itemsize
        if shards[-1] and shard_bytes + nbytes > SHARD_BYTES:
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
