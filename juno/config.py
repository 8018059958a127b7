"""Configuration: one frozen dataclass per stage, loaded from YAML.

Precedence: command line > a ``--config`` file > the defaults below. Every key
of ``config.yaml`` at the top of the project is a field here (a test keeps the
two in step); an unknown or mistyped key is a one-line error naming the key and
the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from juno.errors import JunoError

# Defaults for a Mac user with the Hugging Face Hub; on a machine without a hub,
# juno.models.resolve falls back to the locally imported models of the same role.
DEFAULT_WHISPER = "mlx-community/whisper-large-v3-turbo"
DEFAULT_LLM = "mlx-community/Qwen2.5-3B-Instruct-4bit"


@dataclass(frozen=True)
class ModelsConfig:
    # Folder holding imported models (`juno models import`, `juno models fetch`).
    dir: str = "~/.cache/juno/models"
    # Never contact the Hugging Face Hub; use only local models and the cache.
    offline: bool = False


@dataclass(frozen=True)
class CaptureConfig:
    # Input device name (substring) or index; None for the system default.
    device: str | None = None
    # Sample rate the pipeline runs at; Whisper needs 16 kHz.
    sample_rate_hz: int = 16000
    # Length of each audio chunk sent downstream.
    chunk_ms: int = 100
    # File replay pace: "realtime" (as spoken) or "fast" (as fast as the pipeline takes it).
    file_pace: Literal["realtime", "fast"] = "realtime"


@dataclass(frozen=True)
class TranscribeConfig:
    # Whisper model: Hub repo id, local MLX folder or imported model name.
    model: str = DEFAULT_WHISPER
    # New audio between two re-transcriptions of the buffer.
    step_ms: int = 1000
    # Longest audio buffer kept before it is trimmed.
    buffer_max_s: float = 15.0
    # Detect the spoken language from the first speech instead of using source_language.
    detect_language: bool = False
    # Voice activity gate: "silero" (model), "energy" (loudness) or "off".
    vad: Literal["silero", "energy", "off"] = "silero"
    # Silence after a word that makes it a sentence end.
    sentence_pause_s: float = 0.8
    # Encode only the buffered audio plus audio_ctx_pad_s, not a padded 30 s window.
    fit_audio_ctx: bool = True
    # Silence after the audio when fit_audio_ctx is on; null for the policy's own
    # (2 s for alignatt; 6 s for local-agreement, whose short windows loop with less).
    audio_ctx_pad_s: float | None = None
    # With fit_audio_ctx: decode the window that ends an utterance (a pause, the end
    # of the stream) on the full 30 s context; its words are committed without a
    # second hypothesis.
    full_ctx_at_pause: bool = False
    # Commit policy: "alignatt" (one decoding per step, words committed while Whisper's
    # attention stays behind the audio's end) or "local-agreement" (re-transcribe the
    # buffer, commit what two successive hypotheses agree on).
    policy: Literal["alignatt", "local-agreement"] = "alignatt"
    # AlignAtt: a token attending within this many encoder frames (20 ms each) of the
    # audio's end waits for more audio.
    frame_threshold: int = 25
    # AlignAtt: mid-utterance, a word Whisper gives less probability than this waits for
    # more audio before it is committed.
    min_word_probability: float = 0.5
    # AlignAtt: the longest such a word waits, in seconds of audio heard after it.
    doubtful_wait_s: float = 1.0
    # AlignAtt: an utterance's first words wait until this much of its speech is heard
    # (Whisper guesses on a second or less); 0 commits from the first step.
    onset_speech_s: float = 0.0
    # AlignAtt: beams of the decoding; 1 decodes greedily (faster, less accurate).
    beam_size: int = 5
    # AlignAtt: mid-utterance, the last word decoded is committed at once when the token
    # that stopped the decoding starts a new word; off, it waits for the next step.
    commit_at_word_boundary: bool = True
    # AlignAtt, with fit_audio_ctx: the decoding that ends an utterance, when it holds a
    # word Whisper gave less than this, is decoded again on the full 30 s context (a
    # fitted context now and then gives a word the whole clip doesn't); 0 never does.
    recheck_full_ctx_below: float = 0.0
    # CPU backend: the transcribe process's BLAS threads in `juno run`; 0 gives it half
    # the cores, the translate process the other half.
    cpu_threads: int = 0


@dataclass(frozen=True)
class TranslateConfig:
    # LLM: Hub repo id, local MLX folder, GGUF file or imported model name.
    model: str = DEFAULT_LLM
    # LoRA adapter folder (from `juno tune`) applied to the model; empty for none.
    adapter: str = ""
    # Wait-k: target word i is written once k + i source words are read.
    wait_k: int = 3
    # Target stream start position: an integer, "source" to continue after the source
    # read at the first write, or "source+N" to leave N positions for the source to come.
    phi: str = "source+32"
    # Most tokens one target word may take before it is cut.
    max_tokens_per_word: int = 50
    # A sentence's translation is one line: a line break ends it (never before the source end).
    one_line: bool = True
    # When the model would end before the sentence is read, read another word (k is a floor).
    read_on_end: bool = True
    # With read_on_end: a sentence-final mark (. ! ?) before the source end also reads instead.
    read_on_sentence_end: bool = True
    # With read_on_end: the most source words read in a row because the model would end
    # early; after them it must go on writing (ending tokens are masked). 0 is no limit.
    end_reads: int = 1
    # A writer behind the speaker (source words waiting beyond what the next word needs)
    # reads them all, in one forward, before it writes on; wait-k stays the floor. Off, it
    # reads one word per target word however far behind it is.
    catch_up: bool = True
    # Example translations shown before the first sentence (few-shot); 0 for none.
    examples: int = 2
    # Never write a token that repeats an n-gram of the sentence's translation; 0 is off.
    no_repeat_ngram: int = 4
    # Before the source end, start a target word only when its first token is at least this
    # probable; otherwise read one more source word first (k stays the floor). 0 is off.
    min_confidence: float = 0.0
    # Sampling temperature; 0 is greedy.
    temp: float = 0.0
    # Nucleus sampling threshold; 1.0 disables it.
    top_p: float = 1.0
    # Repetition penalty; 1.0 disables it.
    repetition_penalty: float = 1.0
    # Speculative writing: "off", "lookup" (prompt lookup), "model:SPEC" (a small model with
    # the same tokenizer) or "lookup+model:SPEC"; the words are the same.
    draft: str = "off"
    # Fewest and most tokens drafted at a time (the length adapts to acceptance).
    draft_tokens_min: int = 1
    draft_tokens_max: int = 4
    # System prompt template; {source} and {target} become language names.
    system_prompt: str = (
        "Translate the following {source} text into {target}. Output only the translation."
    )
    # CPU backend: the translate process's BLAS threads in `juno run`; 0 gives it half
    # the cores, the transcribe process the other half.
    cpu_threads: int = 0


@dataclass(frozen=True)
class DisplayConfig:
    # "auto" (live view on a terminal, plain lines otherwise), "live" or "plain".
    mode: Literal["auto", "live", "plain"] = "auto"
    # Folder under which each session writes its files.
    sessions_dir: str = "sessions"
    # Also serve the room page (live transcript and translation) over HTTP.
    web: bool = False
    # Host the room page listens on; anything but loopback needs the session's token.
    web_host: str = "127.0.0.1"
    # Port of the room page.
    web_port: int = 8765


@dataclass(frozen=True)
class ConversationConfig:
    # Two-way: the languages spoken (en,fr), each utterance into the other; empty: one way.
    pair: str | list[str] = ""
    # Two-way: speech (s) an utterance's language is first told from, then until a word is final.
    identify_speech_s: float = 1.0
    # Two-way: an identification less sure than this (0-1, among the pair) waits for more speech,
    identify_confidence: float = 0.9
    # up to this much of it (s), then the likelier language is taken.
    identify_max_speech_s: float = 3.0


@dataclass(frozen=True)
class BusConfig:
    # Host the stages listen on when port is set (127.0.0.1: this machine only).
    host: str = "127.0.0.1"
    # First of five tcp ports (audio, words, source, target, control); 0 uses local ipc sockets.
    port: int = 0


@dataclass(frozen=True)
class Config:
    # Language spoken (ISO 639-1 code).
    source_language: str = "en"
    # Language(s) to translate into (ISO 639-1 code; several at once: a list, or fr,de,es).
    target_language: str | list[str] = "fr"
    models: ModelsConfig = field(default_factory=ModelsConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    bus: BusConfig = field(default_factory=BusConfig)

    @property
    def pair(self) -> list[str]:
        """A two-way conversation's languages (empty: one way)."""
        value = self.conversation.pair
        items = value if isinstance(value, list) else value.split(",")
        return [item.strip() for item in items if item.strip()]

    def directions(self) -> list[tuple[str, str]]:
        """(source, target) of each translation: both ways in a conversation, else from
        source_language into each target language."""
        pair = self.pair
        if pair:
            return [(pair[0], pair[1]), (pair[1], pair[0])]
        return [(self.source_language, t) for t in self.target_languages]

    @property
    def target_languages(self) -> list[str]:
        """The target languages in order: one, or several (a list, or codes joined by commas)."""
        value = self.target_language
        items = value if isinstance(value, list) else value.split(",")
        return [item.strip() for item in items if item.strip()]


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any) -> Any:
    """Return value converted to tp, or raise TypeError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if isinstance(tp, types.UnionType) or origin is typing.Union:
        for arg in typing.get_args(tp):
            try:
                return _check_value(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        return [_check_value(item, typing.get_args(tp)[0]) for item in value]
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        # YAML reads `phi: 0` as an int; a str field takes any scalar as text.
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise TypeError
    raise TypeError


def _build(cls: type, data: dict, source: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise JunoError(f"{source}: unknown config key '{dotted}'{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise JunoError(f"{source}: '{dotted}' must be a section of keys")
            kwargs[key] = _build(tp, value, source, f"{dotted}.")
            continue
        try:
            kwargs[key] = _check_value(value, tp)
        except TypeError:
            raise JunoError(
                f"{source}: '{dotted}' must be {_type_name(tp)}, got {value!r}"
            ) from None
    return cls(**kwargs)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise JunoError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise JunoError(f"{path}:{where} not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JunoError(f"{path}: a config file must be a mapping of keys")
    return data


def _nested(key: str, value: Any) -> dict:
    """``("a.b", v)`` as ``{"a": {"b": v}}``."""
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def parse_override(item: str) -> dict:
    """Turn ``section.key=value`` into a nested dict; the value is read as YAML."""
    if "=" not in item:
        raise JunoError(f"--set {item!r}: expected KEY=VALUE, e.g. translate.wait_k=5")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return _nested(key, value)


# A command's flag that stands for a config key keeps it in this namespace attribute.
_FLAG = "config:"


def add_flag(parser: argparse.ArgumentParser, *flags: str, key: str, **kwargs: Any) -> None:
    """A command-line flag for config key ``key``: ``--wait-k 5`` is ``--set translate.wait_k=5``.

    Every flag that changes a setting goes this way, so it meets the same checks as
    the config file (and :class:`juno.simul.options.TranslateOptions`). A ``default``
    is a command's own default for the key; ``--set`` still overrides it.
    """
    kwargs.setdefault("default", None)
    parser.add_argument(*flags, dest=_FLAG + key, **kwargs)


def flag_overrides(args: argparse.Namespace) -> list[dict]:
    """The overrides that the flags added with :func:`add_flag` carry (those given)."""
    return [
        _nested(name.removeprefix(_FLAG), value)
        for name, value in vars(args).items()
        if name.startswith(_FLAG) and value is not None
    ]


def flag(args: argparse.Namespace, key: str) -> Any:
    """The value given to the flag of ``key`` (None when not given)."""
    return getattr(args, _FLAG + key, None)


def load(path: str | Path | None = None, overrides: list[dict] | None = None) -> Config:
    """Build the config: defaults, then the file at ``path``, then ``overrides``.

    ``overrides`` come from the command line (nested dicts, later wins).
    """
    data: dict = {}
    if path is not None:
        data = _read_yaml(Path(path))
        _build(Config, data, str(path))  # report file errors against the file
    for over in overrides or []:
        _build(Config, over, "command line")
        data = _merge(data, over)
    source = str(path) if path else "command line"
    config = _build(Config, data, source)
    check(config, source)
    return config


def overridden(config: Config, item: str) -> Config:
    """``config`` with one ``section.key=value`` set, read and checked as ``--set`` is."""
    over = parse_override(item)
    _build(Config, over, "command line")
    out = _build(Config, _merge(to_dict(config), over), "command line")
    check(out, "command line")
    return out


def check(config: Config, source: str = "config") -> None:
    """The checks beyond types: the translator's options (k, phi, end_reads...), languages."""
    from juno.simul.options import TranslateOptions

    targets = config.target_languages
    if not targets:
        raise JunoError(f"{source}: target_language: no language given")
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise JunoError(f"{source}: target_language: {', '.join(twice)} given twice")
    pair = config.pair
    if pair and (len(pair) != 2 or pair[0] == pair[1]):
        raise JunoError(
            f"{source}: conversation.pair: two different languages, like en,fr "
            f"(got {', '.join(pair) or 'none'})"
        )
    if config.transcribe.beam_size < 1:
        raise JunoError(f"{source}: transcribe.beam_size must be 1 (greedy) or more")
    for key in ("min_word_probability", "recheck_full_ctx_below"):
        if not 0 <= getattr(config.transcribe, key) <= 1:
            raise JunoError(f"{source}: transcribe.{key} must be within 0 and 1")
    for section in ("transcribe", "translate"):
        if getattr(config, section).cpu_threads < 0:
            raise JunoError(f"{source}: {section}.cpu_threads must be 0 (half the cores) or more")
    c = config.conversation
    if c.identify_speech_s <= 0:
        raise JunoError(f"{source}: conversation.identify_speech_s must be positive")
    if not 0 <= c.identify_confidence <= 1:
        raise JunoError(f"{source}: conversation.identify_confidence must be within 0 and 1")
    if c.identify_max_speech_s < c.identify_speech_s:
        raise JunoError(
            f"{source}: conversation.identify_max_speech_s must be at least identify_speech_s"
        )
    try:
        for target in targets:
            TranslateOptions.from_config(config, target)
        for speaker, listener in config.directions():
            options = TranslateOptions.from_config(config, listener)
            dataclasses.replace(options, source_language=speaker)
    except JunoError as e:
        raise JunoError(f"{source}: {e}") from None


def to_dict(config: Config) -> dict:
    """The config as plain nested data (for reports and for child processes)."""
    return dataclasses.asdict(config)


def from_dict(data: dict) -> Config:
    """Rebuild a config sent as plain data (see :func:`to_dict`)."""
    return _build(Config, data, "config")
