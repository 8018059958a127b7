"""Where the development data lives (``shared/data`` beside the checkout)."""

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
