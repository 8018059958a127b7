"""Transcribe one audio window with mlx-whisper: words with times, and the decoder's confidence.

Whisper's encoder always takes 30 s of mel frames, so a 3 s buffer would pay
for 27 s of padding. :class:`FittedEncoder` wraps the model's encoder so that it
accepts fewer frames (it slices the sinusoidal positional embedding to the
frames given, as whisper.cpp's ``audio_ctx`` does) and passes already encoded
features straight through. mlx-whisper's decoding, language detection and
word alignment all call ``model.encoder``; with the wrapper in place one encoder
pass per window serves all three, on a context that grows with the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_whisper.audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE, log_mel_spectrogram
from mlx_whisper.decoding import DecodingOptions, DecodingResult, decode
from mlx_whisper.timing import add_word_timestamps, dtw
from mlx_whisper.tokenizer import get_tokenizer

from juno.transcriber.guards import COMPRESSION_RATIO_MAX, loop_start
from juno.transcriber.words import Word, normalize

# Whisper's longest window.
MAX_WINDOW_S = N_FRAMES * HOP_LENGTH / SAMPLE_RATE
# Languages whose words mlx-whisper splits without spaces between them.
_NO_SPACES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
# Fast speech is ~4 words/s; German or French words take 2-3 tokens each.
_MAX_TOKENS_PER_S = 10


class FittedEncoder(nn.Module):
    """Whisper's audio encoder on any even number of mel frames up to 3000."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.inner = encoder
        self.full_embedding = encoder._positional_embedding
        self.n_mels = encoder.conv1.weight.shape[-1]

    def __call__(self, x: mx.array) -> mx.array:
        if x.shape[-1] != self.n_mels:
            return x  # already encoded: decoding and alignment pass features back in
        # conv2 has stride 2: the encoder emits one position per two mel frames.
        self.inner._positional_embedding = self.full_embedding[: (x.shape[-2] + 1) // 2]
        return self.inner(x)


def fit_encoder(model: nn.Module) -> None:
    """Install :class:`FittedEncoder` on a loaded Whisper model (once)."""
    if not isinstance(model.encoder, FittedEncoder):
        model.encoder = FittedEncoder(model.encoder)


@dataclass(frozen=True)
class WindowResult:
    """One window's transcription; word times are seconds from the window start."""

    words: list[Word]
    text: str
    language: str
    # Probability of the no-speech token at the start of decoding.
    no_speech_prob: float
    # Mean log probability of the sampled tokens.
    avg_logprob: float
    # gzip compression ratio of the text: high for repetition loops.
    compression_ratio: float
    # Encoder positions the window used (1500 for a full 30 s window).
    encoder_positions: int


class WhisperWindow:
    """Transcribes windows of up to 30 s of 16 kHz audio with word timestamps."""

    def __init__(self, model: nn.Module, fit_context: bool = True, context_pad_s: float = 6.0):
        """``fit_context`` runs the encoder on the audio plus ``context_pad_s`` of
        padding instead of on a full 30 s window."""
        fit_encoder(model)
        self.model = model
        self.fit_context = fit_context
        self.context_pad_s = context_pad_s
        self.dtype = model.encoder.inner.conv1.weight.dtype
        self.fallbacks = 0  # windows decoded again on the full context

    def encode(self, audio: np.ndarray, fit: bool = True) -> tuple[mx.array, int]:
        """Encoder features of ``audio`` and the number of mel frames holding audio.

        ``fit`` encodes only the audio plus ``context_pad_s``; else a full 30 s window.
        """
        n_audio = min(len(audio), N_FRAMES * HOP_LENGTH)
        content = n_audio // HOP_LENGTH
        if fit:
            frames = content + round(self.context_pad_s * SAMPLE_RATE / HOP_LENGTH)
            frames = min(N_FRAMES, frames + frames % 2)
        else:
            frames = N_FRAMES
        # The log-mel is normalized to its loudest frame, so compute it over the
        # audio padded with digital silence, as mlx-whisper's transcribe does.
        mel = log_mel_spectrogram(
            audio[:n_audio], n_mels=self.model.dims.n_mels, padding=frames * HOP_LENGTH
        )[:frames]
        features = self.model.encoder(mel[None].astype(self.dtype))
        mx.eval(features)
        return features[0], content

    def warm_up(self) -> None:
        """Pay one-time costs (numba compiles the alignment's DTW) before timing starts."""
        dtw(np.zeros((4, 4), np.float32))
        self.encode(np.zeros(SAMPLE_RATE, np.float32), self.fit_context)

    def detect_language(self, audio: np.ndarray) -> str:
        """The most probable language of ``audio`` (ISO 639-1)."""
        features, _ = self.encode(audio, self.fit_context)
        _, probs = self.model.detect_language(features)
        return max(probs, key=probs.get)

    def transcribe(
        self, audio: np.ndarray, language: str, prompt: str = "", full_context: bool = False
    ) -> WindowResult:
        """Greedy decoding of one window, then word times by cross-attention alignment.

        ``full_context`` encodes this window on the full 30 s even when the
        window fits its context to the audio.

        On a fitted context Whisper sometimes falls into a repetition loop
        (whisper.cpp's audio_ctx has the same weakness); such a window is
        decoded again on the full 30 s context.
        """
        model = self.model
        fit = self.fit_context and not full_context
        features, content_frames = self.encode(audio, fit)
        result, sample_len = self._decode(features, content_frames, language, prompt)
        if fit and _looped(result, sample_len):
            self.fallbacks += 1
            features, content_frames = self.encode(audio, fit=False)
            result, _ = self._decode(features, content_frames, language, prompt)
        tokenizer = get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages, language=language
        )
        duration_s = content_frames * HOP_LENGTH / SAMPLE_RATE
        segment = {"seek": 0, "start": 0.0, "end": duration_s, "tokens": result.tokens}
        words: list[Word] = []
        if any(t < tokenizer.eot for t in result.tokens):
            add_word_timestamps(
                segments=[segment],
                model=model,
                tokenizer=tokenizer,
                mel=features,
                num_frames=content_frames,
                last_speech_timestamp=0.0,
            )
            words = _join_continuations(segment["words"], language not in _NO_SPACES)
        return WindowResult(
            words=words,
            text=result.text,
            language=language,
            no_speech_prob=float(result.no_speech_prob),
            avg_logprob=float(result.avg_logprob),
            compression_ratio=float(result.compression_ratio),
            encoder_positions=int(features.shape[0]),
        )

    def _decode(
        self, features: mx.array, content_frames: int, language: str, prompt: str
    ) -> tuple[DecodingResult, int]:
        duration_s = content_frames * HOP_LENGTH / SAMPLE_RATE
        # A repetition loop runs to Whisper's 224-token limit and costs seconds;
        # no real speech needs more tokens than this.
        sample_len = min(224, int(_MAX_TOKENS_PER_S * duration_s) + 16)
        options = DecodingOptions(
            language=language,
            prompt=prompt or None,
            temperature=0.0,
            sample_len=sample_len,
            fp16=self.dtype == mx.float16,
        )
        return decode(self.model, features, options), sample_len


def _join_continuations(timed: list[dict], spaced: bool) -> list[Word]:
    """mlx-whisper's words as Words; in a language written with spaces, a piece
    without a leading space continues the word before it (Whisper splits
    "ill-disposed" into "ill" and "-disposed")."""
    words: list[Word] = []
    for w in timed:
        text = w["word"]
        if not text.strip():
            continue
        if spaced and words and not text.startswith(" "):
            last = words[-1]
            p = min(last.probability, float(w["probability"]))
            words[-1] = Word(last.text + text.strip(), last.start_s, float(w["end"]), p)
        else:
            words.append(Word(text.strip(), float(w["start"]), float(w["end"]), w["probability"]))
    return words


def _looped(result: DecodingResult, sample_len: int) -> bool:
    """Whisper ran to the token limit, or repeats itself."""
    return (
        len(result.tokens) >= sample_len - 1
        or result.compression_ratio > COMPRESSION_RATIO_MAX
        or loop_start([normalize(w) for w in result.text.split()]) is not None
    )
