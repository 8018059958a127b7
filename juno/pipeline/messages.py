"""The pipeline's wire types, packed with msgpack.

A message travels as ZeroMQ frames: a msgpack map (``{"t": type tag, "v":
schema version, ...fields}``), then for an audio chunk one raw float32 buffer
frame (no copy into msgpack). Unpacking refuses unknown tags, other schema
versions, missing or foreign fields with :class:`MessageError`, so a stage can
log a bad frame and drop it.

Data messages carry a sequence number (per sender, from 0) and ``stream_s``, the
audio time in seconds since the stream started that they refer to; with
``origin_wall_s`` (the wall-clock time of stream time 0, set by capture and
passed along) any stage can tell how far behind the speaker it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack
import numpy as np

SCHEMA_VERSION = 1


class MessageError(ValueError):
    """A frame that is not a message of this schema."""


@dataclass(frozen=True)
class Message:
    """Base of all messages; ``TAG`` names the type on the wire."""

    TAG: ClassVar[str] = ""


@dataclass(frozen=True)
class AudioChunk(Message):
    """16 kHz mono float32 samples; the samples travel in their own frame."""

    TAG: ClassVar[str] = "audio"
    seq: int
    # Stream time of the chunk's first sample.
    stream_s: float
    # Wall-clock time (time.time()) of stream time 0.
    origin_wall_s: float
    sample_rate_hz: int
    samples: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class SourceWord(Message):
    """A committed word of the transcript (it never changes once sent)."""

    TAG: ClassVar[str] = "source_word"
    seq: int
    # Stream time the word ends (its audio start and end are below).
    stream_s: float
    origin_wall_s: float
    text: str
    start_s: float
    end_s: float
    probability: float
    # The word ends a sentence.
    sentence_end: bool
    # Index of the sentence the word belongs to (from 0).
    sentence: int
    # Wall-clock time the transcriber committed the word.
    committed_wall_s: float
    # The sending stage's work so far: tokens its model generated, and the compute they
    # took (seconds); the room's /stats gives their ratio.
    stage_tokens: int = 0
    stage_compute_s: float = 0.0
    # The language it was spoken in (ISO 639-1): in a conversation, its utterance's.
    language: str = ""
    # It continues the word before it without a space ("cold" "-hearted").
    attached: bool = False


@dataclass(frozen=True)
class TargetWord(Message):
    """A word of the translation, final once sent."""

    TAG: ClassVar[str] = "target_word"
    seq: int
    # Stream time of the end of the last source word read before it was written.
    stream_s: float
    origin_wall_s: float
    text: str
    # Index of the source sentence it translates.
    sentence: int
    # Source words of that sentence read when this word was written (its delay).
    source_words_read: int
    committed_wall_s: float
    # It follows the previous word without a space ("9:" "30" is "9:30").
    attached: bool = False
    # The language it is in (ISO 639-1), one of the session's target languages.
    language: str = ""
    # The sending stage's work so far: tokens its model generated, and the compute they
    # took (seconds); the room's /stats gives their ratio.
    stage_tokens: int = 0
    stage_compute_s: float = 0.0


@dataclass(frozen=True)
class SentenceEnd(Message):
    """The translation of a source sentence is complete."""

    TAG: ClassVar[str] = "sentence_end"
    seq: int
    stream_s: float
    origin_wall_s: float
    sentence: int
    # The source sentence and its translation, whole.
    source: str
    target: str
    # The translation's language (ISO 639-1): each target language ends each sentence.
    language: str = ""
    # The sending stage's work so far: tokens its model generated, and the compute they
    # took (seconds); the room's /stats gives their ratio.
    stage_tokens: int = 0
    stage_compute_s: float = 0.0


@dataclass(frozen=True)
class EndOfStream(Message):
    """No more data will follow from this sender; drain and pass it on."""

    TAG: ClassVar[str] = "end_of_stream"
    seq: int
    stream_s: float
    # The stage that started the end ("capture" at the end of a file or on drain).
    reason: str = ""


@dataclass(frozen=True)
class Ready(Message):
    """A stage has loaded its models and connected its sockets."""

    TAG: ClassVar[str] = "ready"
    process: str
    # What the status line shows: model names, languages, k.
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Heartbeat(Message):
    """A stage is alive; its resource use."""

    TAG: ClassVar[str] = "heartbeat"
    process: str
    cpu_s: float
    rss_bytes: int
    # Peak MLX memory (0 in stages without MLX).
    mlx_peak_bytes: int = 0


@dataclass(frozen=True)
class Error(Message):
    """A stage failed; the supervisor stops the pipeline and reports it."""

    TAG: ClassVar[str] = "error"
    process: str
    message: str


@dataclass(frozen=True)
class Done(Message):
    """A stage passed end of stream on and is exiting cleanly."""

    TAG: ClassVar[str] = "done"
    process: str
    # What the stage's work came to, for the session's report (the writer's drafts).
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Start(Message):
    """All stages are ready: capture starts sending audio."""

    TAG: ClassVar[str] = "start"


@dataclass(frozen=True)
class Shutdown(Message):
    """From the supervisor: ``drain`` (finish what you hold) or ``stop`` (now)."""

    TAG: ClassVar[str] = "shutdown"
    mode: str = "drain"


TYPES: dict[str, type[Message]] = {
    cls.TAG: cls
    for cls in (
        AudioChunk,
        SourceWord,
        TargetWord,
        SentenceEnd,
        EndOfStream,
        Ready,
        Heartbeat,
        Error,
        Done,
        Start,
        Shutdown,
    )
}


# Annotation (a string: postponed evaluation) -> the Python types msgpack gives for it.
_WIRE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "dict": (dict,),
}


def _fields(cls: type[Message]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name != "samples"]


def pack(msg: Message) -> list[bytes]:
    """The frames of ``msg``: a msgpack header, plus the samples for audio."""
    body: dict[str, Any] = {"t": msg.TAG, "v": SCHEMA_VERSION}
    for f in _fields(type(msg)):
        body[f.name] = getattr(msg, f.name)
    frames = [msgpack.packb(body, use_bin_type=True)]
    if isinstance(msg, AudioChunk):
        frames.append(np.ascontiguousarray(msg.samples, dtype=np.float32).tobytes())
    return frames


def unpack(frames: list[bytes] | list[Any]) -> Message:
    """The message in ``frames``; :class:`MessageError` if they hold none."""
    if not frames:
        raise MessageError("empty message")
    try:
        body = msgpack.unpackb(bytes(frames[0]), raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated types
        raise MessageError(f"not msgpack ({type(e).__name__})") from None
    if not isinstance(body, dict):
        raise MessageError(f"not a message map but {type(body).__name__}")
    tag, version = body.pop("t", None), body.pop("v", None)
    cls = TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise MessageError(f"unknown message type {tag!r}")
    if version != SCHEMA_VERSION:
        raise MessageError(f"{tag}: schema version {version!r}, expected {SCHEMA_VERSION}")
    names = {f.name for f in _fields(cls)}
    required = {
        f.name
        for f in _fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if set(body) - names or required - set(body):
        raise MessageError(f"{tag}: fields {sorted(body)} do not match {sorted(names)}")
    for f in _fields(cls):
        if f.name in body and not isinstance(body[f.name], _WIRE_TYPES[f.type]):
            raise MessageError(f"{tag}: field {f.name} is not {f.type}")
    if cls is AudioChunk:
        if len(frames) != 2:
            raise MessageError(f"audio: expected 2 frames, got {len(frames)}")
        raw = memoryview(frames[1]).cast("B")
        if len(raw) % 4:
            raise MessageError("audio: buffer is not whole float32 samples")
        body["samples"] = np.frombuffer(raw, dtype=np.float32)
    elif len(frames) != 1:
        raise MessageError(f"{tag}: expected 1 frame, got {len(frames)}")
    try:
        return cls(**body)
    except TypeError as e:
        raise MessageError(f"{tag}: {e}") from None
