"""One model spec → one MLX model folder, whatever the user gives.

A spec is, in the order tried: a path (an MLX folder, a GGUF file, a
CTranslate2 Whisper folder: the last two are imported once into the models
folder), the name of an imported model, or a Hugging Face repo id (downloaded
once into the standard cache).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Literal

from juno import backend
from juno import config as config_mod
from juno.config import ModelsConfig
from juno.errors import JunoError
from juno.models import hub, store

log = logging.getLogger(__name__)

Role = Literal["llm", "whisper"]

_EXPECTED: dict[str, tuple[store.Kind, ...]] = {
    "llm": ("mlx-lm", "gguf"),
    "whisper": ("mlx-whisper", "ct2-whisper"),
}
_ROLE_NAME = {"llm": "an LLM", "whisper": "a Whisper model"}

# When the built-in Hub defaults cannot be had (no hub, nothing cached), these
# locally imported models (`juno models fetch`) stand in for them.
OFFLINE_STAND_INS = {
    config_mod.DEFAULT_LLM: "qwen2.5-coder-0.5b-instruct",
    config_mod.DEFAULT_WHISPER: "whisper-base",
}

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def models_dir(cfg: ModelsConfig) -> Path:
    return Path(cfg.dir).expanduser()


# Where `juno models fetch` keeps the packages it downloads (default: beside the models).
DOWNLOADS_ENV = "JUNO_DOWNLOADS"


def downloads_dir(cfg: ModelsConfig) -> Path:
    """``$JUNO_DOWNLOADS``, else ``downloads/`` beside the models folder."""
    return Path(os.environ.get(DOWNLOADS_ENV) or models_dir(cfg).parent / "downloads")


def _source_stamp(path: Path) -> dict:
    stat = path.stat()
    return {"source": str(path.resolve()), "size": stat.st_size, "mtime": int(stat.st_mtime)}


def write_marker(folder: Path, info: dict) -> None:
    (folder / store.MARKER).write_text(json.dumps(info, indent=1) + "\n")


def read_marker(folder: Path) -> dict:
    try:
        return json.loads((folder / store.MARKER).read_text())
    except (OSError, ValueError):
        return {}


def import_path(src: Path, dest: Path, overwrite: bool = False) -> Path:
    """Import a GGUF file or CTranslate2 Whisper folder into ``dest``."""
    kind = store.kind_of(src)
    if kind == "gguf":
        from juno.models.gguf import import_gguf

        out = import_gguf(src, dest, overwrite=overwrite)
    elif kind == "ct2-whisper":
        from juno.models.ct2_import import import_ct2_whisper

        # mlx-whisper computes in the dtype its weights are stored in.
        dtype = backend.compute_dtype_name() or "float16"
        out = import_ct2_whisper(src, dest, dtype=dtype, overwrite=overwrite)
    elif kind in ("mlx-lm", "mlx-whisper"):
        raise JunoError(f"{src} is already an MLX model folder ({kind}); use it as it is")
    elif src.is_file():
        raise JunoError(f"{src}: not a GGUF file (nor any model format Juno imports)")
    else:
        raise JunoError(
            f"{src}: not a model folder Juno knows (expected an MLX folder, or model.bin + "
            "config.json of CTranslate2 Whisper)"
        )
    write_marker(out, _source_stamp(src if src.is_file() else src / "model.bin"))
    return out


def _import_once(src: Path, mdir: Path) -> Path:
    """Import ``src`` into the models folder unless the same file was imported before."""
    name = (src.stem if src.is_file() else src.name).lower()
    dest = mdir / name
    stamp = _source_stamp(src if src.is_file() else src / "model.bin")
    if dest.exists():
        if read_marker(dest) == stamp and store.kind_of(dest) != "unknown":
            return dest
        log.info("re-importing %s (the source changed)", src)
    else:
        log.info("importing %s into %s (once)", src, dest)
    mdir.mkdir(parents=True, exist_ok=True)
    return import_path(src, dest, overwrite=True)


def _check_role(path: Path, kind: store.Kind, role: Role, spec: str) -> None:
    if kind not in _EXPECTED[role]:
        what = {"mlx-lm": "an LLM", "gguf": "an LLM", "unknown": "not a model Juno knows"}.get(
            kind, "a Whisper model"
        )
        raise JunoError(f"model '{spec}' ({path}) is {what}, but {_ROLE_NAME[role]} is needed here")


def resolve(spec: str, role: Role, cfg: ModelsConfig) -> Path:
    """The MLX folder for ``spec``, importing or downloading it first if needed."""
    mdir = models_dir(cfg)
    path = Path(spec).expanduser()
    if path.exists():
        kind = store.kind_of(path)
        _check_role(path, kind, role, spec)
        return _import_once(path, mdir) if kind in ("gguf", "ct2-whisper") else path
    local = mdir / spec
    if "/" not in spec and local.is_dir():
        _check_role(local, store.kind_of(local), role, spec)
        return local
    if _REPO_ID.match(spec):
        found = hub.cached(spec)
        if found is not None:
            return found
        stand_in = OFFLINE_STAND_INS.get(spec)
        try:
            if cfg.offline:
                raise JunoError(
                    f"model '{spec}' is not in the local cache and models.offline is set"
                )
            return hub.download(spec)
        except JunoError:
            if stand_in and (mdir / stand_in).is_dir():
                log.warning(
                    "default model %s cannot be had here (no Hub, not cached); using the "
                    "imported '%s' instead (choose with --set %s.model=...)",
                    spec,
                    stand_in,
                    "translate" if role == "llm" else "transcribe",
                )
                return mdir / stand_in
            raise
    names = ", ".join(m.name for m in store.list_models(mdir)) or "none imported yet"
    raise JunoError(
        f"unknown model '{spec}': not a file, a folder, a Hub repo id (owner/name) "
        f"or an imported model ({names})"
    )
