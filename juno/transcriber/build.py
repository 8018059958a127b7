"""Build a streaming transcriber from the config (loading Whisper once)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from juno.config import Config
from juno.transcriber.streaming import StreamingTranscriber, StreamOptions
from juno.transcriber.vad import SpeechTrack, make_detector
from juno.transcriber.whisper_window import WhisperWindow


def stream_options(cfg: Config) -> StreamOptions:
    """The stepper's options from the config's transcribe section."""
    t = cfg.transcribe
    return StreamOptions(
        step_s=t.step_ms / 1000,
        buffer_max_s=t.buffer_max_s,
        language=None if t.detect_language else cfg.source_language,
        sentence_pause_s=t.sentence_pause_s,
        full_context_at_pause=t.full_ctx_at_pause,
        policy=t.policy,
        frame_threshold=t.frame_threshold,
    )


def load_model(cfg: Config) -> Any:
    """The Whisper model named by ``cfg.transcribe.model``, in this machine's dtype."""
    from juno.models.loading import load_whisper

    model, _ = load_whisper(cfg.transcribe.model, cfg)
    return model


def make_transcriber(model: Any, cfg: Config, **overrides: Any) -> StreamingTranscriber:
    """A fresh stepper (one per stream) on an already loaded model.

    ``overrides`` replace StreamOptions fields (the benchmark sets the language).
    """
    t = cfg.transcribe
    window = WhisperWindow(model, fit_context=t.fit_audio_ctx, context_pad_s=t.audio_ctx_pad_s)
    track = SpeechTrack(make_detector(t.vad))
    return StreamingTranscriber(window, track, replace(stream_options(cfg), **overrides))
