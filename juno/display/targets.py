"""The session's target languages, and which of them a translated message is in."""

from __future__ import annotations

from collections.abc import Iterable


class Targets:
    """The target languages in order (``[""]`` when not known: one, unnamed).

    With one target every translated message is in it, whatever its tag says. With
    several, an empty tag (an older sender's) is the first; a language not among them
    is added at the end, so nothing shown is dropped.
    """

    def __init__(self, languages: Iterable[str] = ()) -> None:
        self.languages = list(languages) or [""]

    @property
    def several(self) -> bool:
        """More than one target language: each is shown and written apart."""
        return len(self.languages) > 1

    def of(self, language: str) -> str:
        """The target language of a message tagged ``language``."""
        if not self.several:
            return self.languages[0]
        language = language or self.languages[0]
        if language not in self.languages:
            self.languages.append(language)
        return language
