"""The GGUF vocabulary -> a ``tokenizers`` byte-level BPE and its tokenizer_config.json."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers import processors as post_processors
from tokenizers.models import BPE

from juno.errors import JunoError
from juno.models.gguf.header import Meta

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class TokenizerFiles:
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


def build_tokenizer(meta: Meta, context: int) -> TokenizerFiles:
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
    return TokenizerFiles(tokenizer, config, bos_id, eos_ids, pad_id)
