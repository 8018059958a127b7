"""The import itself: check the file, map it, write the mlx-lm folder whole or not at all."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import mlx.core as mx

from juno.errors import JunoError
from juno.models import store
from juno.models.gguf.config import SUPPORTED_ARCHITECTURES, model_config
from juno.models.gguf.header import Meta, open_reader, scan_header
from juno.models.gguf.tokenizer import build_tokenizer
from juno.models.gguf.weights import Weight, check_against_model, plan_weights, write_weights

log = logging.getLogger(__name__)

_MX_DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32}


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
    store.check_destination(dest, overwrite)
    if not src.is_file():
        raise JunoError(f"{src}: no such file")

    header = scan_header(src)
    arch = header.metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise JunoError(
            f"{src.name}: architecture '{arch}' is not supported "
            f"({', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    reader = open_reader(src)
    meta = Meta(reader, src.name)
    by_name = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in by_name:
        raise JunoError(f"{src.name}: token_embd.weight is missing")
    vocab_rows = int(by_name["token_embd.weight"].shape[-1])  # GGUF dims: [hidden, vocab]
    # Without an output matrix llama.cpp reuses the embeddings; so does mlx-lm when tied.
    tied = "output.weight" not in by_name
    rope_freqs = by_name.get("rope_freqs.weight")
    rope_factors = None if rope_freqs is None else Weight("rope_freqs", rope_freqs).load()
    config = model_config(meta, arch, vocab_rows, tied, rope_factors)
    weights = plan_weights(reader, src.name, arch, config)
    check_against_model(src.name, config, weights)
    tok = build_tokenizer(meta, config["max_position_embeddings"])
    if tok.tokenizer.get_vocab_size() > vocab_rows:
        raise JunoError(f"{src.name}: more tokens than embedding rows ({vocab_rows})")
    config.update(bos_token_id=tok.bos_id, eos_token_id=tok.eos_ids, torch_dtype=dtype)
    generation = {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_ids}
    if tok.pad_id is not None:
        generation["pad_token_id"] = tok.pad_id

    try:
        with store.atomic_folder(dest, overwrite) as tmp:
            write_weights(tmp, weights, _MX_DTYPES[dtype], src.name)
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
            tok.tokenizer.save(str(tmp / "tokenizer.json"))
            (tmp / "tokenizer_config.json").write_text(
                json.dumps(tok.config, indent=2, ensure_ascii=False) + "\n"
            )
    except OSError as e:
        raise JunoError(f"{dest}: cannot write the imported model ({e})") from None
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
