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
        min_word_probability=t.min_word_probability,
        doubtful_wait_s=t.doubtful_wait_s,
        onset_speech_s=t.onset_speech_s,
        commit_at_word_boundary=t.commit_at_word_boundary,
        recheck_full_ctx_below=t.recheck_full_ctx_below,
        languages=tuple(cfg.pair),
        identify_speech_s=cfg.conversation.identify_speech_s,
        identify_confidence=cfg.conversation.identify_confidence,
        identify_max_speech_s=cfg.conversation.identify_max_speech_s,
    )


# Silence after the audio on a fitted context, per policy: AlignAtt stops before
# the audio's end anyway; LocalAgreement's short windows loop with less than 6 s
# (README, "How the transcriber streams").
PAD_S = {"alignatt": 2.0, "local-agreement": 6.0}


def pad_s(cfg: Config) -> float:
    """The fitted context's padding: the configured one, or the policy's own."""
    t = cfg.transcribe
    return t.audio_ctx_pad_s if t.audio_ctx_pad_s is not None else PAD_S[t.policy]


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
    window = WhisperWindow(
        model, fit_context=t.fit_audio_ctx, context_pad_s=pad_s(cfg), beams=t.beam_size
    )
    track = SpeechTrack(make_detector(t.vad))
    return StreamingTranscriber(window, track, replace(stream_options(cfg), **overrides))
