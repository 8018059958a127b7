"""Evaluation manifests: the items ``juno eval`` runs, from a JSON or JSONL file.

An item is speech (an audio file and its reference transcript) or text (a
source sentence), in a source language ``lang``, with reference translations
keyed by target language:

    {"id": "jfk", "lang": "en", "audio": "${JUNO_DATA}/audio/jfk.flac",
     "transcript": "And so my fellow Americans, ...", "translations": {"fr": "Ainsi, ..."}}
    {"id": "flores-1", "lang": "en", "source": "On Monday, ...",
     "translations": {"fr": "Lundi, ...", "de": "Am Montag ..."}}

A ``.jsonl`` manifest holds one item per line; any other holds a JSON list of
items or ``{"items": [...]}``. Audio paths are relative to the manifest's
folder; a leading ``${JUNO_DATA}`` stands for the development data folder
(``$JUNO_DATA``, else ``../shared/data`` beside the checkout).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from juno.errors import JunoError
from juno.languages import NAMES

DATA_ROOT = "${JUNO_DATA}"
FIELDS = ("id", "lang", "audio", "transcript", "source", "translations")


@dataclass(frozen=True)
class Item:
    """One thing to evaluate: a clip with its transcript, or a source sentence."""

    id: str
    # Source language (ISO 639-1).
    lang: str
    # Reference translations by target language.
    translations: dict[str, str] = field(default_factory=dict)
    # Speech: the audio file (resolved) and its reference transcript.
    audio: Path | None = None
    transcript: str | None = None
    # Text: the source sentence.
    source: str | None = None

    @property
    def kind(self) -> str:
        return "speech" if self.audio is not None else "text"


def resolve_path(raw: str, folder: Path) -> Path:
    """An audio path from a manifest: ``${JUNO_DATA}/...``, absolute, or relative to it."""
    if raw.startswith(DATA_ROOT):
        from juno.paths import shared_data

        return shared_data() / raw[len(DATA_ROOT) :].lstrip("/\\")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else folder / path


def load_manifest(path: str | Path) -> list[Item]:
    """The manifest's items, checked: a one-line JunoError names the item at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise JunoError(f"cannot read manifest {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise JunoError(f"{path}: not a UTF-8 text file") from None
    entries = _entries_jsonl(path, text) if path.suffix == ".jsonl" else _entries_json(path, text)
    if not entries:
        raise JunoError(f"{path}: no items")
    items, seen = [], set()
    for where, data in entries:
        item = _item(data, where, path.parent, default_id=f"item-{len(items) + 1}")
        if item.id in seen:
            raise JunoError(f"{where}: item '{item.id}': id used twice")
        seen.add(item.id)
        items.append(item)
    return items


def _entries_jsonl(path: Path, text: str) -> list[tuple[str, Any]]:
    entries = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise JunoError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno})") from None
    return entries


def _entries_json(path: Path, text: str) -> list[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise JunoError(
            f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})"
        ) from None
    if isinstance(data, dict) and set(data) == {"items"}:
        data = data["items"]
    if not isinstance(data, list):
        raise JunoError(f'{path}: expected a list of items or {{"items": [...]}}')
    return [(f"{path}: item {n}", entry) for n, entry in enumerate(data, start=1)]


def _item(data: Any, where: str, folder: Path, default_id: str) -> Item:
    if not isinstance(data, dict):
        raise JunoError(f"{where}: an item must be a JSON object")
    if "id" in data:
        name = data["id"]
        if not isinstance(name, str) or not name.strip():
            raise JunoError(f"{where}: 'id' must be a non-empty string")
    elif isinstance(data.get("audio"), str):
        name = Path(data["audio"]).stem
    else:
        name = default_id

    def fail(message: str) -> JunoError:
        return JunoError(f"{where}: item '{name}': {message}")

    for key in data:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise fail(f"unknown field '{key}'{hint}")

    def text(key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise fail(f"'{key}' must be a non-empty string")
        return value.strip()

    lang = text("lang")
    if lang not in NAMES:
        raise fail(f"unknown language code '{lang}' in 'lang'")
    translations = data.get("translations", {})
    if not isinstance(translations, dict):
        raise fail("'translations' must be an object of language code: reference")
    for code, reference in translations.items():
        if code not in NAMES:
            raise fail(f"unknown language code '{code}' in 'translations'")
        if not isinstance(reference, str) or not reference.strip():
            raise fail(f"translations['{code}'] must be a non-empty string")
    translations = {code: ref.strip() for code, ref in translations.items()}

    if ("audio" in data) == ("source" in data):
        raise fail("needs either 'audio' (speech) or 'source' (text)")
    if "source" in data:
        if "transcript" in data:
            raise fail("'transcript' is for speech items; a text item has 'source'")
        return Item(name, lang, translations, source=text("source"))
    raw = text("audio")
    try:
        audio = resolve_path(raw, folder)
    except JunoError as e:
        raise fail(str(e)) from None
    if not audio.is_file():
        raise fail(f"audio file {audio} not found")
    return Item(name, lang, translations, audio=audio, transcript=text("transcript"))
