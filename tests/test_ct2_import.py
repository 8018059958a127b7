"""CTranslate2 Whisper import on tiny random models written in CT2's own layout.

A random mlx-whisper model is exported to a ``model.bin`` laid out like the real
faster-whisper files (fused q/k/v with a zero key bias, fused cross-attention k/v,
PyTorch conv layout, float16, a projection alias), imported back, and must give
the same parameters and logits.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, replace
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten
from mlx_whisper.load_models import load_model
from mlx_whisper.whisper import ModelDimensions, Whisper

import juno  # noqa: F401  (loads OpenBLAS before anything imports mlx)
from juno.errors import JunoError
from juno.models.ct2_import import import_ct2_whisper, read_ct2

DIMS = ModelDimensions(
    n_mels=8,
    n_audio_ctx=6,
    n_audio_state=16,
    n_audio_head=2,
    n_audio_layer=2,
    n_vocab=51865,
    n_text_ctx=10,
    n_text_state=16,
    n_text_head=4,  # differs from the encoder's so a mix-up shows
    n_text_layer=2,
)
HEADS = [[1, 0], [1, 3]]
_DTYPE_IDS = {
    np.dtype("float32"): 0,
    np.dtype("int8"): 1,
    np.dtype("int16"): 2,
    np.dtype("float16"): 4,
}


def write_ct2(
    path: Path,
    variables: dict[str, np.ndarray],
    aliases: dict[str, str] | None = None,
    spec: str = "WhisperSpec",
) -> None:
    """Write ``variables`` in CTranslate2's model.bin layout (binary version 6)."""

    def string(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = [struct.pack("<I", 6), string(spec), struct.pack("<II", 3, len(variables))]
    for name, value in variables.items():
        value = np.asarray(value)
        out += [string(name), struct.pack("<B", value.ndim)]
        out += [struct.pack(f"<{value.ndim}I", *value.shape)]
        out += [struct.pack("<BI", _DTYPE_IDS[value.dtype], value.nbytes), value.tobytes()]
    out.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        out += [string(alias), string(target)]
    path.write_bytes(b"".join(out))


def random_model(dims: ModelDimensions, seed: int = 0) -> Whisper:
    """A Whisper with every float parameter random and exactly representable in float16."""
    rng = np.random.default_rng(seed)
    model = Whisper(dims, mx.float32)
    params = [
        (k, mx.array((0.5 * rng.standard_normal(v.shape)).astype(np.float16).astype(np.float32)))
        for k, v in tree_flatten(model.parameters())
        if k != "alignment_heads"
    ]
    model.update(tree_unflatten(params))
    model.set_alignment_heads(np.array(HEADS))
    return model


def _sinusoids(length: int, channels: int) -> np.ndarray:
    increment = np.log(10000) / (channels // 2 - 1)
    scaled = np.arange(length)[:, None] * np.exp(-increment * np.arange(channels // 2))[None]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)


def to_ct2(model: Whisper) -> dict[str, np.ndarray]:
    """Export ``model`` under CTranslate2's WhisperSpec names, as its converter does."""
    p = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    d = model.dims
    f16 = np.float16
    v: dict[str, np.ndarray] = {
        "decoder/activation": np.array(3, np.int8),
        "decoder/alibi": np.array(0, np.int8),
        "decoder/alignment_heads": np.array(1, np.int16),
        "decoder/alignment_layer": np.array(-1, np.int16),
        "decoder/num_heads": np.array(d.n_text_head, np.int16),
        "decoder/pre_norm": np.array(1, np.int8),
        "decoder/scale_embeddings": np.array(0, np.int8),
        "decoder/start_from_zero_embedding": np.array(0, np.int8),
        "encoder/num_heads": np.array(d.n_audio_head, np.int16),
        "encoder/position_encodings/encodings": _sinusoids(d.n_audio_ctx, d.n_audio_state),
        "decoder/embeddings/weight": p["decoder.token_embedding.weight"],
        "decoder/position_encodings/encodings": p["decoder.positional_embedding"],
    }
    for conv in ("conv1", "conv2"):
        v[f"encoder/{conv}/weight"] = p[f"encoder.{conv}.weight"].transpose(0, 2, 1)
        v[f"encoder/{conv}/bias"] = p[f"encoder.{conv}.bias"]

    def linear(src: str, dst: str) -> None:
        v[f"{dst}/weight"], v[f"{dst}/bias"] = p[f"{src}.weight"], p[f"{src}.bias"]

    def norm(src: str, dst: str) -> None:
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = p[f"{src}.weight"], p[f"{src}.bias"]

    def fused(srcs: list[str], dst: str) -> None:
        v[f"{dst}/weight"] = np.concatenate([p[f"{s}.weight"] for s in srcs])
        # Whisper's key has no bias: CT2 fills its slot with zeros.
        v[f"{dst}/bias"] = np.concatenate(
            [p.get(f"{s}.bias", np.zeros(p[f"{s}.weight"].shape[0], np.float32)) for s in srcs]
        )

    for prefix, n in (("encoder", d.n_audio_layer), ("decoder", d.n_text_layer)):
        for i in range(n):
            s, t = f"{prefix}.blocks.{i}", f"{prefix}/layer_{i}"
            fused(
                [f"{s}.attn.query", f"{s}.attn.key", f"{s}.attn.value"],
                f"{t}/self_attention/linear_0",
            )
            linear(f"{s}.attn.out", f"{t}/self_attention/linear_1")
            norm(f"{s}.attn_ln", f"{t}/self_attention/layer_norm")
            if prefix == "decoder":
                linear(f"{s}.cross_attn.query", f"{t}/attention/linear_0")
                fused([f"{s}.cross_attn.key", f"{s}.cross_attn.value"], f"{t}/attention/linear_1")
                linear(f"{s}.cross_attn.out", f"{t}/attention/linear_2")
                norm(f"{s}.cross_attn_ln", f"{t}/attention/layer_norm")
            linear(f"{s}.mlp1", f"{t}/ffn/linear_0")
            linear(f"{s}.mlp2", f"{t}/ffn/linear_1")
            norm(f"{s}.mlp_ln", f"{t}/ffn/layer_norm")
    norm("encoder.ln_post", "encoder/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    # Real files are float16 apart from the integer flags.
    return {k: a.astype(f16) if a.dtype.kind == "f" else a for k, a in sorted(v.items())}


ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}


def make_src(
    folder: Path, model: Whisper, variables: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """A faster-whisper style folder (model.bin + config.json) for ``model``."""
    folder.mkdir(parents=True, exist_ok=True)
    variables = to_ct2(model) if variables is None else variables
    write_ct2(folder / "model.bin", variables, ALIASES)
    config = {
        "alignment_heads": HEADS,
        "lang_ids": [],
        "suppress_ids": [],
        "suppress_ids_begin": [],
    }
    (folder / "config.json").write_text(json.dumps(config))
    return variables


@pytest.mark.parametrize("n_vocab", [51865, 51864], ids=["multilingual", "english-only"])
def test_round_trip_lands_every_parameter_where_mlx_whisper_expects_it(tmp_path, n_vocab):
    dims = replace(DIMS, n_vocab=n_vocab)
    ref = random_model(dims)
    src = make_src(tmp_path / "ct2", ref)

    dest = import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx", dtype="float32")

    assert json.loads((dest / "config.json").read_text()) == asdict(dims)
    stored = mx.load(str(dest / "weights.safetensors"))
    assert set(stored) == {k for k, _ in tree_flatten(ref.parameters())}
    model = load_model(str(dest), dtype=mx.float32)
    assert model.is_multilingual == (n_vocab == 51865)
    assert model.alignment_heads.tolist() == HEADS

    def same(a: mx.array, b: np.ndarray) -> None:
        np.testing.assert_array_equal(np.array(a), b.astype(np.float32))

    n = dims.n_audio_state
    same(model.encoder.conv1.weight, src["encoder/conv1/weight"].transpose(0, 2, 1))
    same(model.encoder.conv2.bias, src["encoder/conv2/bias"])
    qkv = src["encoder/layer_1/self_attention/linear_0/weight"]
    same(model.encoder.blocks[1].attn.query.weight, qkv[:n])
    same(model.encoder.blocks[1].attn.key.weight, qkv[n : 2 * n])
    same(
        model.encoder.blocks[1].attn.value.bias,
        src["encoder/layer_1/self_attention/linear_0/bias"][2 * n :],
    )
    same(model.encoder.ln_post.weight, src["encoder/layer_norm/gamma"])
    same(
        model.decoder.blocks[0].cross_attn.value.bias,
        src["decoder/layer_0/attention/linear_1/bias"][n:],
    )
    same(
        model.decoder.blocks[0].cross_attn.key.weight,
        src["decoder/layer_0/attention/linear_1/weight"][:n],
    )
    same(
        model.decoder.blocks[1].cross_attn_ln.bias, src["decoder/layer_1/attention/layer_norm/beta"]
    )
    same(model.decoder.blocks[1].mlp2.weight, src["decoder/layer_1/ffn/linear_1/weight"])
    same(model.decoder.token_embedding.weight, src["decoder/embeddings/weight"])
    same(model.decoder.positional_embedding, src["decoder/position_encodings/encodings"])

    # A forward pass through both: same shapes, same logits.
    mel = mx.array(np.random.default_rng(1).standard_normal((1, 2 * dims.n_audio_ctx, dims.n_mels)))
    tokens = mx.array([[50257, 3, 7, 11]])
    audio = model.embed_audio(mel)
    assert audio.shape == (1, dims.n_audio_ctx, dims.n_audio_state)
    logits = model.logits(tokens, audio)
    assert logits.shape == (1, 4, n_vocab)
    np.testing.assert_allclose(np.array(logits), np.array(ref(mel, tokens)), rtol=1e-5, atol=1e-5)


def test_default_dtype_is_float16_and_lossless_for_float16_sources(tmp_path):
    ref = random_model(DIMS)
    make_src(tmp_path / "ct2", ref)
    dest = import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx")
    stored = mx.load(str(dest / "weights.safetensors"))
    assert stored["decoder.token_embedding.weight"].dtype == mx.float16
    np.testing.assert_array_equal(
        np.array(stored["encoder.blocks.0.mlp1.weight"].astype(mx.float32)),
        np.array(ref.encoder.blocks[0].mlp1.weight),
    )


def test_int8_weights_are_dequantized(tmp_path):
    ref = random_model(DIMS)
    variables = to_ct2(ref)
    name = "decoder/layer_0/ffn/linear_0/weight"
    w = variables[name].astype(np.float32)
    # CTranslate2's int8 quantization: one scale per output row.
    scale = 127.0 / np.abs(w).max(axis=1)
    variables[name] = np.rint(w * scale[:, None]).astype(np.int8)
    variables[name + "_scale"] = scale.astype(np.float32)
    make_src(tmp_path / "ct2", ref, variables)

    model = load_model(str(import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx", "float32")))
    got = np.array(model.decoder.blocks[0].mlp1.weight)
    np.testing.assert_allclose(got, w, atol=float((0.5 / scale).max()) + 1e-6)


def test_read_ct2_reports_header_and_resolves_aliases(tmp_path):
    make_src(tmp_path, random_model(DIMS))
    arrays, info = read_ct2(tmp_path / "model.bin")
    assert info["spec"] == "WhisperSpec"
    assert (info["binary_version"], info["revision"]) == (6, 3)
    assert info["aliases"] == ALIASES
    assert arrays["decoder/projection/weight"] is arrays["decoder/embeddings/weight"]
    assert arrays["encoder/conv1/weight"].shape == (16, 8, 3)
    assert int(arrays["decoder/num_heads"]) == 4


def _assert_nothing_left(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "trailing"])
def test_damaged_model_bin_is_a_one_line_error_and_leaves_nothing(tmp_path, damage):
    make_src(tmp_path / "ct2", random_model(DIMS))
    model_bin = tmp_path / "ct2" / "model.bin"
    data = model_bin.read_bytes()
    if damage == "truncated":
        model_bin.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        model_bin.write_bytes(np.random.default_rng(2).bytes(len(data)))
    else:
        model_bin.write_bytes(data + b"\0" * 7)

    with pytest.raises(JunoError) as e:
        import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx")
    assert str(model_bin) in str(e.value) and "\n" not in str(e.value)
    _assert_nothing_left(tmp_path)


def test_a_model_that_is_not_whisper_is_refused(tmp_path):
    (tmp_path / "ct2").mkdir()
    write_ct2(
        tmp_path / "ct2" / "model.bin",
        {"x/weight": np.zeros(2, np.float32)},
        spec="TransformerSpec",
    )
    with pytest.raises(JunoError, match="TransformerSpec, not Whisper"):
        import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx")
    _assert_nothing_left(tmp_path)


def test_unknown_variables_and_bad_alignment_heads_are_refused(tmp_path):
    ref = random_model(DIMS)
    variables = to_ct2(ref)
    variables["decoder/layer_0/adapter/weight"] = np.zeros((2, 2), np.float16)
    make_src(tmp_path / "ct2", ref, variables)
    with pytest.raises(JunoError, match="adapter"):
        import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx")

    make_src(tmp_path / "ct2", ref)
    (tmp_path / "ct2" / "config.json").write_text(json.dumps({"alignment_heads": [[2, 0]]}))
    with pytest.raises(JunoError, match="alignment_heads"):
        import_ct2_whisper(tmp_path / "ct2", tmp_path / "mlx")
    _assert_nothing_left(tmp_path)


def test_existing_destination_is_refused_unless_overwrite(tmp_path):
    make_src(tmp_path / "ct2", random_model(DIMS))
    dest = tmp_path / "mlx"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")

    with pytest.raises(JunoError, match="already exists"):
        import_ct2_whisper(tmp_path / "ct2", dest)
    assert (dest / "keep.txt").read_text() == "mine"

    import_ct2_whisper(tmp_path / "ct2", dest, overwrite=True)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2", "mlx"]
