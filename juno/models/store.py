"""What a model path holds, and the local models folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from juno.errors import JunoError

Kind = Literal["mlx-lm", "mlx-whisper", "ct2-whisper", "gguf", "unknown"]

# Written into every folder Juno imports: where it came from, for reuse checks.
MARKER = "juno-import.json"


@dataclass(frozen=True)
class LocalModel:
    """A model found on disk."""

    name: str
    path: Path
    kind: Kind
    size_bytes: int
    detail: str  # architecture, dims or quantization, for listings


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def kind_of(path: Path) -> Kind:
    """Classify a file or folder by its contents, not its name."""
    if path.is_file():
        try:
            with path.open("rb") as f:
                magic = f.read(4)
        except OSError:
            return "unknown"
        return "gguf" if magic == b"GGUF" else "unknown"
    if not path.is_dir():
        return "unknown"
    config = _read_json(path / "config.json")
    weights = ("weights.safetensors", "weights.npz")
    if "n_mels" in config and any((path / w).exists() for w in weights):
        return "mlx-whisper"
    if "model_type" in config and any(path.glob("*.safetensors")):
        return "mlx-lm"
    if (path / "model.bin").exists() and (path / "config.json").exists():
        return "ct2-whisper"
    return "unknown"


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _detail(path: Path, kind: Kind) -> str:
    config = _read_json(path / "config.json") if path.is_dir() else {}
    if kind == "mlx-lm":
        q = config.get("quantization")
        bits = f", {q.get('bits')}-bit" if isinstance(q, dict) else ""
        layers = config.get("num_hidden_layers", "?")
        return f"{config.get('model_type', '?')}, {layers} layers{bits}"
    if kind == "mlx-whisper":
        langs = "multilingual" if config.get("n_vocab", 0) >= 51865 else "English-only"
        return f"whisper, {config.get('n_audio_layer', '?')} layers, {langs}"
    source = _read_json(path / MARKER).get("source") if path.is_dir() else None
    return f"from {source}" if source else ""


def describe(path: Path, name: str | None = None) -> LocalModel:
    kind = kind_of(path)
    return LocalModel(name or path.name, path, kind, size_of(path), _detail(path, kind))


def list_models(models_dir: Path) -> list[LocalModel]:
    """The usable models in the models folder (temporary import folders skipped)."""
    if not models_dir.is_dir():
        return []
    found = []
    for child in sorted(models_dir.iterdir()):
        if child.name.startswith("."):
            continue
        model = describe(child)
        if model.kind != "unknown":
            found.append(model)
    return found


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def replace_folder(tmp: Path, dest: Path) -> None:
    """Swap ``tmp`` in as ``dest``, keeping the old folder until the new one is in place."""
    if not dest.exists():
        tmp.rename(dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    dest.rename(old)
    try:
        tmp.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    shutil.rmtree(old)


def check_destination(dest: Path, overwrite: bool) -> None:
    """Refuse a ``dest`` that ``atomic_folder`` would refuse, before any work is done."""
    if dest.exists() and not overwrite:
        raise JunoError(f"{dest} already exists (pass overwrite to replace it)")
    if dest.exists() and not dest.is_dir():
        raise JunoError(f"{dest} exists and is not a folder")


@contextmanager
def atomic_folder(dest: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``dest``; it becomes ``dest`` when the block ends.

    The folder appears whole or not at all: if the block raises, the temporary
    folder is removed and whatever was at ``dest`` stays as it was. An existing
    ``dest`` folder is replaced only with ``overwrite=True`` (otherwise JunoError,
    before the block runs). The temporary name starts with a dot, so
    ``list_models`` skips it.
    """
    dest = Path(dest)
    check_destination(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is not secret
        yield tmp
        if overwrite:
            replace_folder(tmp, dest)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
