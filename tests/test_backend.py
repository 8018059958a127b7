"""The backend's choice of device, BLAS and dtype, with the GPU faked: on this CPU machine
the CUDA build and the NVIDIA driver are stand-ins, MLX's own answers are real."""

from __future__ import annotations

import ctypes
import os
from importlib import metadata
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest

from juno import backend
from juno.config import load as load_config
from juno.errors import JunoError


@pytest.fixture(autouse=True)
def _cpu_again():
    """Whatever a test selects, the next one starts on the CPU."""
    yield
    mx.set_default_device(mx.cpu)


@pytest.fixture
def machine(monkeypatch):
    """Set what the machine has: ``machine(cuda="mlx-cuda-13", nvidia=True, env="gpu")``."""
    monkeypatch.delenv(backend.DEVICE_ENV, raising=False)

    def make(cuda: str | None = None, nvidia: bool = False, env: str | None = None) -> None:
        monkeypatch.setattr(backend, "cuda_build", lambda: cuda)
        monkeypatch.setattr(backend, "nvidia_gpu_present", lambda: nvidia)
        if env is not None:
            monkeypatch.setenv(backend.DEVICE_ENV, env)

    return make


def test_a_cpu_machine_runs_float32_on_openblas(machine):
    machine()
    assert not backend.uses_gpu()
    assert backend.compute_dtype_name() == "float32"
    backend.select_device()
    assert mx.default_device() == mx.cpu
    line = backend.describe()
    assert line.startswith("Linux") and "CPU, OpenBLAS" in line and line.endswith("float32")


def test_a_model_stage_takes_half_the_cores_for_openblas(monkeypatch):
    before = backend.blas_threads()
    assert before is not None  # the tests run on the CPU backend, OpenBLAS loaded
    try:
        monkeypatch.setattr(backend, "cores", lambda: 4)
        assert backend.share_cores(0) == 2 and backend.blas_threads() == 2
        assert backend.share_cores(1) == 1 and backend.blas_threads() == 1
        monkeypatch.setattr(backend, "cores", lambda: 1)
        assert backend.share_cores(0) == 1  # never none
    finally:
        backend.set_blas_threads(before)
    assert backend.blas_threads() == before


def test_without_openblas_there_is_nothing_to_share(monkeypatch):
    monkeypatch.setattr(backend, "_blas_path", None)
    assert backend.share_cores(0) is None and backend.blas_threads() is None


def test_a_negative_thread_count_is_a_config_error():
    with pytest.raises(JunoError, match="translate.cpu_threads must be 0"):
        load_config(None, [{"translate": {"cpu_threads": -1}}])


@pytest.mark.parametrize(
    "cuda, nvidia, env, gpu",
    [
        ("mlx-cuda-13", True, None, True),  # pip install -e ".[cuda]" on a GPU machine
        ("mlx-cuda-13", False, None, False),  # the CUDA build on a machine without a GPU
        (None, True, None, False),  # a GPU, but mlx[cpu]
        ("mlx-cuda-13", True, "cpu", False),  # kept on the CPU by choice
        ("mlx-cuda-12", False, "gpu", True),  # insisted on (a driver this check misses)
        (None, True, "gpu", False),  # insisted on, without the build: select_device says so
        ("mlx-cuda-13", True, "tpu", False),  # a bad value: select_device says so
    ],
)
def test_the_gpu_is_chosen_only_with_the_cuda_build_and_a_gpu(machine, cuda, nvidia, env, gpu):
    machine(cuda, nvidia, env)
    assert backend.uses_gpu() is gpu
    assert backend.compute_dtype_name() == (None if gpu else "float32")


def test_on_the_gpu_openblas_is_not_loaded(machine, monkeypatch):
    machine("mlx-cuda-13", True)
    monkeypatch.setattr(backend, "_blas_path", None)
    monkeypatch.setattr(backend, "_blas_late", False)

    def no_blas(*args, **kwargs):
        raise AssertionError("OpenBLAS loaded on the GPU")

    monkeypatch.setattr(ctypes, "CDLL", no_blas)
    monkeypatch.delenv(backend.CUDNN_SDPA_ENV, raising=False)
    assert backend.preload_blas() is None
    assert not backend._blas_late  # skipped by choice, not too late
    assert os.environ[backend.CUDNN_SDPA_ENV] == "0"  # MLX's attention: no planning stalls
    machine("mlx-cuda-13", True, "cpu")
    monkeypatch.setattr(ctypes, "CDLL", lambda path, mode=0: path)
    monkeypatch.setattr(backend, "_find_openblas", lambda: "/lib/libopenblas.so")
    monkeypatch.setattr(backend, "_blas_late", False)
    monkeypatch.delitem(__import__("sys").modules, "mlx.core")  # as if MLX came later
    assert backend.preload_blas() == "/lib/libopenblas.so"


def test_the_gpu_line_names_the_gpu_and_the_build(machine, monkeypatch):
    machine("mlx-cuda-13", True)
    monkeypatch.setattr(mx, "device_info", lambda: {"device_name": "NVIDIA H200"})
    line = backend.describe()
    assert "NVIDIA GPU (NVIDIA H200)" in line and "mlx-cuda-13" in line
    assert "model dtype" in line and "no OpenBLAS" in line and "CPU" not in line


def test_select_device_makes_the_gpu_the_default(machine, monkeypatch):
    machine("mlx-cuda-13", True)
    chosen = []
    monkeypatch.setattr(mx.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mx, "set_default_device", chosen.append)
    backend.select_device()
    assert chosen == [mx.gpu]


def test_select_device_errors_are_one_line(machine):
    machine("mlx-cuda-13", True)  # this machine's MLX sees no CUDA GPU: the real answer
    with pytest.raises(JunoError, match="sees no usable NVIDIA GPU.*JUNO_DEVICE=cpu"):
        backend.select_device()
    machine(None, True, "gpu")
    with pytest.raises(JunoError, match=r"MLX's CUDA build is not installed: pip install"):
        backend.select_device()
    machine(None, False, "tpu")
    with pytest.raises(JunoError, match="JUNO_DEVICE=tpu: expected cpu or gpu"):
        backend.select_device()


def _fake_distribution(root: Path, name: str, library_bytes: int) -> metadata.Distribution:
    """An installed distribution whose RECORD lists mlx/lib/libmlx.so of ``library_bytes``."""
    info = root / f"{name.replace('-', '_')}-0.32.4.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.32.4\n")
    (info / "RECORD").write_text(f"mlx/lib/libmlx.so,sha256=x,{library_bytes}\n")
    return metadata.PathDistribution(info)


@pytest.mark.parametrize("in_place_bytes, found", [(1000, "mlx-cuda-13"), (700, None)])
def test_the_cuda_build_counts_only_when_its_library_is_the_one_installed(
    tmp_path, monkeypatch, in_place_bytes, found
):
    """mlx-cpu and mlx-cuda-13 install the same file; the later install wins."""
    dist = _fake_distribution(tmp_path, "mlx-cuda-13", 1000)
    library = tmp_path / "mlx" / "lib" / "libmlx.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\0" * in_place_bytes)

    def distribution(name):
        if name == "mlx-cuda-13":
            return dist
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", distribution)
    assert backend.cuda_build() == found


def test_this_machine_has_no_cuda_build():
    assert backend.cuda_build() is None  # mlx[cpu]: the CPU's library is the one in place


def test_on_the_gpu_a_model_keeps_its_dtype_and_its_quantization(
    tiny_llm, tmp_path, machine, monkeypatch
):
    """bf16 stays bf16 and 4-bit stays 4-bit on the GPU; on the CPU both become float32."""
    from mlx_lm import convert

    from juno.models.loading import load_llm

    quantized = tmp_path / "tiny-4bit"
    convert(str(tiny_llm), str(quantized), quantize=True, q_group_size=32, dtype="bfloat16")
    cfg = load_config(None)

    def kinds(model):
        linear = model.model.layers[0].self_attn.q_proj
        return type(linear), model.model.norm.weight.dtype

    machine()
    model, _, _ = load_llm(str(quantized), cfg)
    assert kinds(model) == (nn.Linear, mx.float32)  # dequantized for OpenBLAS
    machine("mlx-cuda-13", True)
    monkeypatch.setattr(backend, "select_device", lambda: None)  # no GPU here to select
    model, _, _ = load_llm(str(quantized), cfg)
    assert kinds(model) == (nn.QuantizedLinear, mx.bfloat16)
