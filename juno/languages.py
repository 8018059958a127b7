"""Language codes and the names prompts use."""

from __future__ import annotations

from juno.errors import JunoError

# ISO 639-1 → English name, for the languages Whisper and the LLMs handle well.
NAMES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "pt": "Portuguese",
    "it": "Italian",
    "nl": "Dutch",
    "pl": "Polish",
    "ru": "Russian",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "ar": "Arabic",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "hi": "Hindi",
    "sv": "Swedish",
    "da": "Danish",
    "no": "Norwegian",
    "fi": "Finnish",
    "cs": "Czech",
    "el": "Greek",
    "he": "Hebrew",
    "id": "Indonesian",
    "vi": "Vietnamese",
    "ro": "Romanian",
    "hu": "Hungarian",
    "ca": "Catalan",
}


def language_name(code: str) -> str:
    """The English name of a language code; a one-line error for unknown codes."""
    try:
        return NAMES[code.lower()]
    except KeyError:
        known = ", ".join(sorted(NAMES))
        raise JunoError(f"unknown language code '{code}' (known: {known})") from None


def language_code(value: str) -> str:
    """The code of a language given by code (``"fr"``) or English name (``"French"``)."""
    lowered = value.strip().lower()
    for code, name in NAMES.items():
        if lowered == name.lower():
            return code
    language_name(lowered)  # a one-line error for an unknown language
    return lowered
