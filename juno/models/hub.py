"""Downloads from the Hugging Face Hub (the path Mac users take)."""

from __future__ import annotations

import logging
from pathlib import Path

from juno.errors import JunoError

log = logging.getLogger(__name__)

# Files an MLX model folder needs (mlx-lm's own list, plus mlx-whisper's weights).
ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "weights.npz",
    "*.py",
    "tokenizer.model",
    "*.tiktoken",
    "tiktoken.model",
    "*.txt",
    "*.jsonl",
    "*.jinja",
]


def cached(repo_id: str) -> Path | None:
    """The repo's folder in the Hugging Face cache, if fully downloaded before."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(repo_id, allow_patterns=ALLOW_PATTERNS, local_files_only=True)
        )
    except Exception:  # any miss: not in the cache, or incomplete
        return None


def download(repo_id: str) -> Path:
    """Download ``repo_id`` once into the standard cache, with a progress bar.

    Raises a one-line JunoError when the Hub cannot be reached or the repo does
    not exist, saying how to give a local model instead.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    instead = (
        "give a local model instead: an MLX folder, a .gguf file, or a name from "
        "`juno models list` (e.g. --set translate.model=qwen2.5-coder-0.5b-instruct)"
    )
    log.info("downloading %s from the Hugging Face Hub", repo_id)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=ALLOW_PATTERNS))
    except (RepositoryNotFoundError, GatedRepoError):
        raise JunoError(f"model '{repo_id}' not found on the Hugging Face Hub; {instead}") from None
    except LocalEntryNotFoundError:
        raise JunoError(
            f"cannot download '{repo_id}': the Hugging Face Hub is unreachable; {instead}"
        ) from None
    except (HfHubHTTPError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise JunoError(f"cannot download '{repo_id}' ({reason}); {instead}") from None
