"""GGUF -> mlx-lm import, on tiny GGUF files written here with gguf.GGUFWriter.

The reference for every check is built without the importer: HF-named weights
(dequantized with gguf.quants where the file stores them quantized) loaded
straight into mlx-lm's model classes, and the byte-level BPE tokenizer the
vocabulary was trained as.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import mlx.core as mx
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.models import llama, qwen2, qwen3
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE

import juno  # noqa: F401  (OpenBLAS before mlx)
from juno.errors import JunoError
from juno.models.gguf import gguf_summary, import_gguf
from juno.models.gguf import weights as gguf_weights

# K-quant rows hold whole 256-element blocks, so every input width is a multiple of 256.
HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 256, 2, 4, 2, 64, 512, 320
CONTEXT = 2048
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CORPUS = [
    "The cat is sleeping on the sofa.",
    "Le chat dort sur le canapé, 2024 fois !",
    "Hello world: what's the time?\n\tIt's 10:45.",
    # Qwen's split keeps a leading punctuation mark on a word; GPT-2's does not.
    "(hello) (hello) «chat» «chat» -dort -dort",
]
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = ["<tool_call>"]
TEXTS = [
    "The cat is sleeping on the sofa.",
    "Le chat dort sur le canapé, 2024 fois !",
    "  spaces\tand\nnewlines  ",
    "unseen words: zygote, émoji 🙂",
    "<|im_start|>user\nhi<|im_end|>",
    "<tool_call>x",
    "(hello) «chat» -dort",
]

# How the qwen models' tensors are stored: a mix of Q8_0, K-quants and floats.
QUANT = {
    "token_embd": Q.Q8_0,
    "output": Q.Q6_K,
    "attn_q": Q.Q4_K,
    "attn_k": Q.Q8_0,
    "attn_v": Q.Q6_K,
    "attn_output": Q.Q8_0,
    "ffn_gate": Q.Q4_K,
    "ffn_up": Q.Q8_0,
    "ffn_down": Q.Q6_K,
}
BLOCK_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
GLOBAL_NAMES = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
}


def gguf_name(hf_name: str) -> str:
    base, kind = hf_name.rsplit(".", 1)
    if base in GLOBAL_NAMES:
        return f"{GLOBAL_NAMES[base]}.{kind}"
    _, _, layer, part = base.split(".", 3)
    return f"blk.{layer}.{BLOCK_NAMES[part]}.{kind}"


# ---------------------------------------------------------------- builders


def train_tokenizer() -> Tokenizer:
    """A tiny Qwen2-style byte-level BPE, plus the chat control tokens."""
    tok = Tokenizer(BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    tok.add_special_tokens(CONTROL)
    tok.add_tokens(USER_DEFINED)
    return tok


def write_tokenizer(w: gguf.GGUFWriter, tok: Tokenizer, pre: str) -> None:
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    types = [
        gguf.TokenType.CONTROL
        if t in CONTROL
        else gguf.TokenType.USER_DEFINED
        if t in USER_DEFINED
        else gguf.TokenType.NORMAL
        for t in tokens
    ]
    # Padding rows up to the embedding size, as llama.cpp's converter writes them.
    pads = [f"[PAD{i}]" for i in range(len(tokens), VOCAB)]
    merges = [" ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens + pads)
    w.add_token_types(types + [gguf.TokenType.UNUSED] * len(pads))
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.token_to_id("<|endoftext|>"))
    w.add_eos_token_id(tok.token_to_id("<|im_end|>"))
    w.add_pad_token_id(tok.token_to_id("<|endoftext|>"))
    w.add_chat_template(CHAT_TEMPLATE)


def k_quant_blocks(rng: np.random.Generator, shape: tuple[int, int], qtype: Q) -> np.ndarray:
    """Random raw K-quant blocks (gguf cannot quantize K-quants) with small fp16 scales."""
    block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = shape
    raw = rng.integers(0, 256, size=(rows, cols // block, nbytes), dtype=np.uint8)
    if qtype == Q.Q4_K:  # d, dmin (fp16) lead the block
        raw[..., 0:4] = np.array([2e-4, 1e-4], dtype=np.float16).view(np.uint8)
    elif qtype == Q.Q6_K:  # d (fp16) ends the block; scales are int8
        raw[..., 208:210] = np.array([2e-5], dtype=np.float16).view(np.uint8)
    else:
        raise ValueError(qtype)
    return raw.reshape(rows, cols // block * nbytes)


def encode(rng: np.random.Generator, w: np.ndarray, qtype: Q) -> tuple[np.ndarray, np.ndarray]:
    """(what the GGUF stores, the float32 weight it stands for)."""
    if qtype == Q.F32:
        return w, w
    if qtype == Q.F16:
        stored = w.astype(np.float16)
        return stored, stored.astype(np.float32)
    stored = quantize(w, qtype) if qtype == Q.Q8_0 else k_quant_blocks(rng, w.shape, qtype)
    return stored, dequantize(stored, qtype)


def model_args(arch: str, tied: bool, **extra) -> dict:
    return {
        "model_type": arch,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "intermediate_size": FFN,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1e6 if arch != "llama" else 5e5,
        "vocab_size": VOCAB,
        "max_position_embeddings": CONTEXT,
        "tie_word_embeddings": tied,
        **extra,
    }


def hf_shapes(arch: str, tied: bool) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes, taken from mlx-lm's own model."""
    module = {"qwen2": qwen2, "qwen3": qwen3, "llama": llama}[arch]
    model = module.Model(module.ModelArgs.from_dict(model_args(arch, tied)))
    return {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute (llama.cpp's Q/K row order)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_gguf(
    path: Path,
    arch: str,
    tok: Tokenizer,
    *,
    tied: bool,
    pre: str = "qwen2",
    quant: dict[str, Q] | None = None,
    rope_freqs: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a random ``arch`` model as GGUF; return its HF-named float32 weights."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(LAYERS)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(model_args(arch, tied)["rope_theta"])
    write_tokenizer(w, tok, pre)

    hf: dict[str, np.ndarray] = {}
    for name, shape in hf_shapes(arch, tied).items():
        if "norm" in name:
            value = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            value = (0.05 * rng.standard_normal(shape)).astype(np.float32)
        gname = gguf_name(name)
        part = gname.split(".")[-2]
        qtype = (quant or {}).get(part, Q.F32) if value.ndim == 2 else Q.F32
        stored, hf[name] = encode(rng, value, qtype)
        if arch == "llama" and part in ("attn_q", "attn_k"):
            stored = llama_permute(stored, HEADS if part == "attn_q" else KV_HEADS)
        raw = qtype if stored.dtype == np.uint8 else None
        w.add_tensor(gname, stored, raw_dtype=raw)
    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", rope_freqs.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


def direct_model(arch: str, hf: dict[str, np.ndarray], tied: bool, **extra):
    module = {"qwen2": qwen2, "qwen3": qwen3, "llama": llama}[arch]
    model = module.Model(module.ModelArgs.from_dict(model_args(arch, tied, **extra)))
    model.load_weights([(k, mx.array(v)) for k, v in hf.items()], strict=True)
    return model


def logits(model, ids: list[int]) -> np.ndarray:
    out = np.array(model(mx.array([ids])).astype(mx.float32))
    # assert_allclose counts NaN == NaN as a match; a NaN here is a broken weight.
    assert np.isfinite(out).all() and out.std() > 1e-3
    return out


def siblings(dest: Path) -> list[str]:
    """Folders next to ``dest`` named after it: itself, temporary or old copies."""
    return sorted(p.name for p in dest.parent.iterdir() if p.is_dir() and dest.name in p.name)


IDS = [5, 77, 200, 12, 299, 3, 150, 41]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer()


@pytest.fixture(scope="module")
def qwen2_file(tmp_path_factory, tok) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("gguf") / "tiny-qwen2.gguf"
    hf = write_gguf(path, "qwen2", tok, tied=False, quant=QUANT)
    return path, hf


@pytest.fixture(scope="module")
def qwen2_f32(tmp_path_factory, qwen2_file) -> Path:
    dest = tmp_path_factory.mktemp("out") / "tiny-qwen2"
    return import_gguf(qwen2_file[0], dest, dtype="float32")


# ---------------------------------------------------------------- tests


def test_qwen2_logits_match_the_directly_built_model(qwen2_file, qwen2_f32):
    _, hf = qwen2_file
    model, _ = load(str(qwen2_f32))
    expected = logits(direct_model("qwen2", hf, tied=False), IDS)
    np.testing.assert_allclose(logits(model, IDS), expected, atol=1e-4, rtol=1e-4)

    config = json.loads((qwen2_f32 / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["tie_word_embeddings"] is False
    assert config["vocab_size"] == VOCAB
    assert config["max_position_embeddings"] == CONTEXT
    assert config["rope_theta"] == 1e6


@pytest.mark.parametrize(
    ("dtype", "mx_dtype", "atol"),
    [(None, mx.float16, 1e-2), ("bfloat16", mx.bfloat16, 5e-2)],
    ids=["default-float16", "bfloat16"],
)
def test_half_precision_imports(tmp_path, qwen2_file, dtype, mx_dtype, atol):
    path, hf = qwen2_file
    dest = import_gguf(path, tmp_path / "half", **({"dtype": dtype} if dtype else {}))
    weights = mx.load(str(dest / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {mx_dtype}
    model, _ = load(str(dest))
    model.set_dtype(mx.float32)
    expected = logits(direct_model("qwen2", hf, tied=False), IDS)
    # Only the rounding of the weights differs.
    np.testing.assert_allclose(logits(model, IDS), expected, atol=atol)


def test_tokenizer_encodes_decodes_like_the_trained_one(qwen2_f32, tok):
    # tokenizer.json as written (what transformers 4 loads), and through mlx-lm
    # (transformers 5 rebuilds Qwen2's pipeline around the same vocabulary).
    written = Tokenizer.from_file(str(qwen2_f32 / "tokenizer.json"))
    _, tokenizer = load(str(qwen2_f32))
    for text in TEXTS:
        expected = tok.encode(text).ids
        assert written.encode(text).ids == expected, text
        assert tokenizer.encode(text) == expected, text
        assert tokenizer.decode(expected) == text
    assert tokenizer.encode("<|im_start|>") == [tok.token_to_id("<|im_start|>")]
    # <|im_end|> ends generation; <|endoftext|> is only bos/pad in this file.
    assert tokenizer.eos_token_ids == {tok.token_to_id("<|im_end|>")}


def test_chat_template_comes_from_the_gguf(qwen2_f32, tok):
    _, tokenizer = load(str(qwen2_f32))
    messages = [{"role": "user", "content": "The cat is sleeping."}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nThe cat is sleeping.<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert ids == tok.encode(text).ids


def test_qwen3_maps_q_and_k_norms(tmp_path, tok):
    path = tmp_path / "tiny-qwen3.gguf"
    hf = write_gguf(path, "qwen3", tok, tied=True, quant=QUANT)
    assert any("q_norm" in k for k in hf)
    model, _ = load(str(import_gguf(path, tmp_path / "q3", dtype="float32")))
    expected = logits(direct_model("qwen3", hf, tied=True), IDS)
    np.testing.assert_allclose(logits(model, IDS), expected, atol=1e-4, rtol=1e-4)


def test_llama_q_and_k_rows_are_unpermuted(tmp_path, tok):
    path = tmp_path / "tiny-llama.gguf"
    quant = {"token_embd": Q.F16, "attn_v": Q.F16, "ffn_up": Q.Q8_0}
    hf = write_gguf(path, "llama", tok, tied=True, pre="llama-bpe", quant=quant)
    dest = import_gguf(path, tmp_path / "llama", dtype="float32")
    model, tokenizer = load(str(dest))
    expected = logits(direct_model("llama", hf, tied=True), IDS)
    np.testing.assert_allclose(logits(model, IDS), expected, atol=1e-4, rtol=1e-4)
    assert json.loads((dest / "config.json").read_text())["tie_word_embeddings"] is True
    # llama.cpp adds BOS for Llama 3 vocabularies unless the file says otherwise.
    bos = tok.token_to_id("<|endoftext|>")
    assert tokenizer.encode("The cat")[0] == bos


def test_llama3_rope_freqs_become_rope_scaling(tmp_path, tok):
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    # Llama 3.1's divisors, computed as convert_hf_to_gguf.py does.
    freqs = 1.0 / 5e5 ** (np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
    wavelen = 2 * np.pi / freqs
    smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0)
    factors = np.where(
        wavelen < 8192 / 4.0,
        1.0,
        np.where(wavelen > 8192 / 1.0, 8.0, 1 / ((1 - smooth) / 8.0 + smooth)),
    )
    assert 1.0 < factors.max() and factors.min() == 1.0  # the test exercises all three bands
    path = tmp_path / "tiny-llama31.gguf"
    hf = write_gguf(path, "llama", tok, tied=True, pre="llama-bpe", rope_freqs=factors)
    dest = import_gguf(path, tmp_path / "llama31", dtype="float32")
    assert json.loads((dest / "config.json").read_text())["rope_scaling"] == scaling
    model, _ = load(str(dest))
    expected = logits(direct_model("llama", hf, tied=True, rope_scaling=scaling), IDS)
    np.testing.assert_allclose(logits(model, IDS), expected, atol=1e-4, rtol=1e-4)


def test_summary_reads_the_header(qwen2_file):
    path, hf = qwen2_file
    summary = gguf_summary(path)
    assert summary["architecture"] == "qwen2"
    assert summary["context_length"] == CONTEXT
    assert summary["parameter_count"] == sum(v.size for v in hf.values())
    per_layer = {"Q4_K": 2, "Q6_K": 2, "Q8_0": 3}
    expected = {k: v * LAYERS for k, v in per_layer.items()}
    expected["Q8_0"] += 1  # token_embd
    expected["Q6_K"] += 1  # output
    expected["F32"] = LAYERS * 5 + 1  # 2 norms and 3 biases per layer, output_norm
    assert summary["quantization"] == expected


@pytest.mark.parametrize("keep", [100, -1000], ids=["in-header", "in-tensor-data"])
def test_truncated_file_is_refused_and_leaves_nothing(tmp_path, qwen2_file, keep):
    data = qwen2_file[0].read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:keep])
    dest = tmp_path / "cut"
    with pytest.raises(JunoError, match=r"^cut\.gguf: truncated"):
        import_gguf(bad, dest)
    assert siblings(dest) == []


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04" + bytes(100)], ids=["empty", "zip"])
def test_non_gguf_file_is_refused(tmp_path, content):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(content)
    with pytest.raises(JunoError, match=r"^model\.gguf: not a GGUF file"):
        import_gguf(bad, tmp_path / "out")
    assert siblings(tmp_path / "out") == []


def test_unsupported_architecture_is_named(tmp_path):
    path = tmp_path / "x.gguf"
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(JunoError) as err:
        import_gguf(path, tmp_path / "x")
    assert str(err.value) == "x.gguf: architecture 'mamba' is not supported (qwen2, qwen3, llama)"


def test_existing_dest_is_refused_unless_overwrite(tmp_path, qwen2_file):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.txt").write_text("keep me")
    with pytest.raises(JunoError, match="already exists"):
        import_gguf(qwen2_file[0], dest)
    assert (dest / "old.txt").read_text() == "keep me"

    import_gguf(qwen2_file[0], dest, overwrite=True)
    assert not (dest / "old.txt").exists()
    assert (dest / "model.safetensors").exists()
    assert siblings(dest) == ["model"]


def test_failure_while_writing_removes_the_temporary_folder(tmp_path, qwen2_file, monkeypatch):
    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_weights.Weight, "load", disk_full)
    dest = tmp_path / "model"
    with pytest.raises(JunoError, match="No space left on device"):
        import_gguf(qwen2_file[0], dest)
    assert siblings(dest) == []


def test_large_models_are_written_in_shards(tmp_path, qwen2_file, monkeypatch):
    path, hf = qwen2_file
    monkeypatch.setattr(gguf_weights, "SHARD_BYTES", 300_000)
    dest = import_gguf(path, tmp_path / "sharded", dtype="float32")
    shards = sorted(p.name for p in dest.glob("*.safetensors"))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((dest / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(hf) and set(index["weight_map"].values()) == set(shards)
    model, _ = load(str(dest))
    expected = logits(direct_model("qwen2", hf, tied=False), IDS)
    np.testing.assert_allclose(logits(model, IDS), expected, atol=1e-4, rtol=1e-4)


def test_a_gguf_spec_is_imported_once_then_reused(tmp_path, qwen2_file):
    from juno.config import ModelsConfig
    from juno.models import resolve

    src, _ = qwen2_file
    cfg = ModelsConfig(dir=str(tmp_path / "models"), offline=True)
    first = resolve.resolve(str(src), "llm", cfg)
    assert first.parent == tmp_path / "models" and (first / "config.json").exists()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve.resolve(str(src), "llm", cfg) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not imported again
    with pytest.raises(JunoError, match="is an LLM, but a Whisper model is needed"):
        resolve.resolve(str(src), "whisper", cfg)
