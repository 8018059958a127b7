"""``TranslateOptions``: every setting of the streaming translator, checked once.

Built from the config's translate section (:meth:`TranslateOptions.from_config`);
a command-line flag reaches it only through the config (``--wait-k`` is
``--set translate.wait_k=…``). Benchmarks and sweeps derive their variants with
``dataclasses.replace``, which runs the same checks. No MLX here: the config
loader checks a file's translate section through this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from juno.errors import JunoError
from juno.languages import language_code, language_name

Phi = int | str  # an int, "source" (the source length read at the first write) or "source+N"

DEFAULT_SYSTEM_PROMPT = (
    "Translate the following {source} text into {target}. Output only the translation."
)


def parse_phi(value: int | str) -> Phi:
    """A non-negative integer, ``"source"`` or ``"source+N"`` (config files give text).

    ``"source+N"`` starts the target N positions after the source read at the
    first write, leaving room for the source words still to come.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        phi = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text == "source":
            return "source"
        try:
            if text.startswith("source+"):
                gap = int(text.removeprefix("source+"))
                if gap < 0:
                    raise ValueError
                return f"source+{gap}" if gap else "source"
            phi = int(text)
        except ValueError:
            raise JunoError(
                f"phi must be 'source', 'source+N' or an integer, got {value!r}"
            ) from None
    if phi < 0:
        raise JunoError(f"phi must not be negative, got {phi}")
    return phi


def phi_gap(phi: Phi) -> int | None:
    """N of ``"source+N"`` (0 for ``"source"``); None for a fixed position."""
    if isinstance(phi, int):
        return None
    return int(phi.removeprefix("source").removeprefix("+") or 0)


def parse_draft(spec: str) -> tuple[bool, str | None]:
    """``translate.draft``: ``off``, ``lookup``, ``model:SPEC`` or ``lookup+model:SPEC``.

    Returns (lookup on, the draft model's spec or None).
    """
    text = spec.strip()
    if text in ("", "off"):
        return False, None
    lookup, model = False, None
    for part in text.split("+", 1) if text.startswith("lookup+") else [text]:
        if part == "lookup":
            lookup = True
        elif part.startswith("model:") and part.removeprefix("model:").strip():
            model = part.removeprefix("model:").strip()
        else:
            raise JunoError(
                f"draft must be 'off', 'lookup', 'model:SPEC' or 'lookup+model:SPEC', got {spec!r}"
            )
    return lookup, model


@dataclass(frozen=True)
class TranslateOptions:
    """The writer's settings; the defaults are the product's (those of ``config.yaml``)."""

    # Languages, as ISO 639-1 codes (an English name is taken too).
    source_language: str = "en"
    target_language: str = "fr"
    # Wait-k: target word i is written once k + i source words are read.
    wait_k: int = 3
    # Target stream start position: an integer, "source" or "source+N".
    phi: Phi = "source+32"
    # Most tokens one target word may take before it is cut.
    max_tokens_per_word: int = 50
    # Most target words of one sentence (None: no limit); benchmarks force lengths with it.
    max_words_per_sentence: int | None = None
    # A sentence's translation is one line: a line break ends it.
    one_line: bool = True
    # When the model would end before the sentence is read, read another word instead.
    read_on_end: bool = True
    # With read_on_end: a sentence-final mark before the source end also reads instead.
    read_on_sentence_end: bool = True
    # With read_on_end: the most early-end reads in a row (0: no limit).
    end_reads: int = 1
    # A writer behind the speaker reads every source word that has arrived before it
    # writes on (wait-k stays the floor); off, it reads one word per target word.
    catch_up: bool = True
    # Example translations shown before the first sentence (few-shot).
    examples: int = 2
    # Never write a token that repeats an n-gram of the sentence's translation; 0 is off.
    no_repeat_ngram: int = 4
    # Before the source end, start a word only when its first token is this probable.
    min_confidence: float = 0.0
    # Sampling: temperature (0 is greedy), nucleus threshold, repetition penalty.
    temp: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    # Speculative writing (see juno.simul.speculative): "off", "lookup", "model:SPEC" or
    # "lookup+model:SPEC", and the bounds of the draft length.
    draft: str = "off"
    draft_tokens_min: int = 1
    draft_tokens_max: int = 4
    # System prompt template; {source} and {target} become language names.
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        for name in ("source_language", "target_language"):
            object.__setattr__(self, name, language_code(getattr(self, name)))
        object.__setattr__(self, "phi", parse_phi(self.phi))
        checks = [
            (self.wait_k >= 1, f"wait-k needs k >= 1, got {self.wait_k}"),
            (
                self.max_tokens_per_word >= 1,
                f"max_tokens_per_word must be at least 1, got {self.max_tokens_per_word}",
            ),
            (
                self.max_words_per_sentence is None or self.max_words_per_sentence >= 1,
                f"max_words_per_sentence must be at least 1, got {self.max_words_per_sentence}",
            ),
            (
                self.end_reads >= 0,
                f"end_reads must be 0 (no limit) or more, got {self.end_reads}",
            ),
            (self.examples >= 0, f"examples must not be negative, got {self.examples}"),
            (
                self.no_repeat_ngram == 0 or self.no_repeat_ngram >= 2,
                f"no_repeat_ngram must be 0 (off) or at least 2, got {self.no_repeat_ngram}",
            ),
            (
                0.0 <= self.min_confidence < 1.0,
                f"min_confidence must be in [0, 1), got {self.min_confidence}",
            ),
            (self.temp >= 0.0, f"temp must not be negative, got {self.temp}"),
            (0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}"),
            (
                self.repetition_penalty > 0.0,
                f"repetition_penalty must be positive, got {self.repetition_penalty}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise JunoError(message)
        parse_draft(self.draft)
        if not 1 <= self.draft_tokens_min <= self.draft_tokens_max:
            raise JunoError(
                "draft lengths need 1 <= draft_tokens_min <= draft_tokens_max, got "
                f"{self.draft_tokens_min} and {self.draft_tokens_max}"
            )
        try:
            self.system_prompt.format(source="", target="")
        except (KeyError, IndexError, ValueError):
            raise JunoError(
                "system_prompt may hold only the fields {source} and {target}"
            ) from None

    @classmethod
    def from_config(cls, cfg: Any, target: str | None = None) -> TranslateOptions:
        """The options of a :class:`juno.config.Config` (its languages and translate section),
        into ``target``: by default the config's one target language."""
        if target is None:
            targets = cfg.target_languages
            if len(targets) > 1:
                raise JunoError(
                    f"several target languages ({', '.join(targets)}): this command "
                    "translates into one (--target)"
                )
            target = targets[0] if targets else ""
        section = cfg.translate
        keys = {f.name for f in fields(cls)} & {f.name for f in fields(section)}
        return cls(
            source_language=cfg.source_language,
            target_language=target,
            **{key: getattr(section, key) for key in keys},
        )

    @property
    def min_logprob(self) -> float | None:
        """``min_confidence`` as a log-probability; None when off."""
        return math.log(self.min_confidence) if self.min_confidence else None

    def system(self) -> str:
        """The system prompt with the language names filled in."""
        return self.system_prompt.format(
            source=language_name(self.source_language), target=language_name(self.target_language)
        )
