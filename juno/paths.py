"""Where the development data lives (``shared/data`` beside the checkout) and its FLORES files."""

from __future__ import annotations

import os
from pathlib import Path

from juno.errors import JunoError

_CHECKOUT = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    """``$JUNO_DATA``, else ``../shared/data`` next to the checkout."""
    path = Path(os.environ.get("JUNO_DATA") or _CHECKOUT.parent / "shared" / "data")
    if not path.is_dir():
        raise JunoError(f"development data not found at {path} (set JUNO_DATA)")
    return path


# FLORES-200 file names of the languages the benchmark and ``juno tune`` use.
FLORES = {"en": "eng_Latn", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn"}


def flores_pairs(text: str) -> list[tuple[str, str]]:
    """``--pairs`` ("en-fr,en-de") as (source, target) codes, each a pair of the FLORES files."""
    pairs = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        source, _, target = item.partition("-")
        if source != "en" or target not in FLORES or target == "en":
            known = ", ".join(f"en-{t}" for t in FLORES if t != "en")
            raise JunoError(f"--pairs: {item} not available ({known})")
        pairs.append((source, target))
    if not pairs:
        raise JunoError("--pairs: no language pair given")
    return pairs


def flores_dev(lang: str, n: int | None = None) -> list[str]:
    """The FLORES-200 dev sentences of ``lang`` (a code in :data:`FLORES`), the first ``n``."""
    path = shared_data() / "flores200-dev" / f"{FLORES[lang]}.dev"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise JunoError(f"cannot read {path}: {e.strerror}") from None
    return lines[:n] if n else lines
