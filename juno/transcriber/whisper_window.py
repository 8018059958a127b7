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
from mlx_whisper.timing import (
    TOKENS_PER_SECOND,
    WordTiming,
    add_word_timestamps,
    dtw,
    merge_punctuations,
)
from mlx_whisper.tokenizer import Tokenizer, get_tokenizer

from juno.errors import JunoError
from juno.transcriber.alignatt import FRAMES_PER_S, attended_frame, reached_end
from juno.transcriber.guards import COMPRESSION_RATIO_MAX, loop_start
from juno.transcriber.words import Word, normalize

# Whisper's longest window.
MAX_WINDOW_S = N_FRAMES * HOP_LENGTH / SAMPLE_RATE
# Languages whose words mlx-whisper splits without spaces between them.
_NO_SPACES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
# Fast speech is ~4 words/s; German or French words take 2-3 tokens each.
MAX_TOKENS_PER_S = 10


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


@dataclass(frozen=True)
class Continuation:
    """One AlignAtt decoding of a window: what Whisper says past the forced prefix."""

    # New words, times in seconds from the window start, tokens attached.
    words: list[Word]
    # Probability of the no-speech token at the start of decoding.
    no_speech_prob: float
    # Mean log probability of the new tokens (0 when there are none).
    avg_logprob: float
    # Decoding stopped because the attention reached the audio's end.
    reached_end: bool
    # The new tokens, as decoded (words drop what holds no text).
    tokens: tuple[int, ...] = ()
    # The token that stopped the decoding (attention at the audio's end) starts a
    # new word: Whisper holds the last word it said complete.
    next_starts_word: bool = False


class WhisperWindow:
    """Transcribes windows of up to 30 s of 16 kHz audio with word timestamps."""

    def __init__(
        self,
        model: nn.Module,
        fit_context: bool = True,
        context_pad_s: float = 6.0,
        beams: int = 1,
    ):
        """``fit_context`` runs the encoder on the audio plus ``context_pad_s`` of
        padding instead of on a full 30 s window; ``beams`` is AlignAtt's beam
        width (1: greedy)."""
        if beams < 1:
            raise JunoError(f"transcribe.beam_size must be 1 (greedy) or more, not {beams}")
        fit_encoder(model)
        self.beams = beams
        self.model = model
        self.fit_context = fit_context
        self.context_pad_s = context_pad_s
        self.dtype = model.encoder.inner.conv1.weight.dtype
        self.fallbacks = 0  # windows decoded again on the full context
        self.generated_tokens = 0  # tokens the decoder wrote (forced ones not counted)
        # The last encoding, for a second call on the same array (a step that identifies
        # the language, then decodes): (audio, fit, result). The array is held, so its
        # identity stays its own; the stepper never changes a buffer in place.
        self._last: tuple[np.ndarray, bool, tuple[mx.array, int]] | None = None

    def encode(self, audio: np.ndarray, fit: bool = True) -> tuple[mx.array, int]:
        """Encoder features of ``audio`` and the number of mel frames holding audio.

        ``fit`` encodes only the audio plus ``context_pad_s``; else a full 30 s window.
        The same array given again is not encoded again.
        """
        if self._last is not None and self._last[0] is audio and self._last[1] == fit:
            return self._last[2]
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
        self._last = (audio, fit, (features[0], content))
        return features[0], content

    def warm_up(self) -> None:
        """Pay one-time costs (numba compiles the alignment's DTW) before timing starts."""
        dtw(np.zeros((4, 4), np.float32))
        self.encode(np.zeros(SAMPLE_RATE, np.float32), self.fit_context)

    def detect_language(self, audio: np.ndarray, among: tuple[str, ...] = ()) -> str:
        """The most probable language of ``audio`` (ISO 639-1), of ``among`` if given."""
        if among:
            return self.identify(audio, among)[0]
        features, _ = self.encode(audio, self.fit_context)
        _, probs = self.model.detect_language(features)
        return max(probs, key=probs.get)

    def identify(self, audio: np.ndarray, among: tuple[str, ...]) -> tuple[str, float]:
        """The likeliest of the languages ``among`` for ``audio``, and its probability
        among them alone (Whisper's language probabilities renormalized over them)."""
        features, _ = self.encode(audio, self.fit_context)
        _, probs = self.model.detect_language(features)
        weights = {code: probs.get(code, 0.0) for code in among}
        language = max(among, key=weights.__getitem__)
        total = sum(weights.values())
        return language, weights[language] / total if total > 0 else 1.0 / len(among)

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
        self.generated_tokens += len(result.tokens)
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

    def continue_decoding(
        self,
        audio: np.ndarray,
        language: str,
        prompt: str,
        forced: list[int],
        stop_s: float,
        max_new_tokens: int,
        full_context: bool = False,
    ) -> Continuation:
        """AlignAtt's step: one decoding of ``audio`` that first reproduces the
        ``forced`` tokens (the committed words in the buffer), then emits new
        tokens until end of text, ``max_new_tokens``, or a token whose
        alignment-head attention falls at or past ``stop_s`` (seconds from the
        window's start; that token is dropped).

        Greedy with one beam; with ``beams`` > 1, a beam search in lockstep
        (:func:`_next_beams`) in which the best-scoring continuation decides,
        as the one greedy token does: end of text ends the decoding, and a
        token of a hypothesis whose attention reached the stop point stops it.

        Word times come from the same attention (Whisper's DTW alignment), so
        the step costs one encoder pass and one decoder pass per new token.
        ``full_context`` encodes on the full 30 s even when the window fits its
        context to the audio.
        """
        model = self.model
        features, content_frames = self.encode(audio, self.fit_context and not full_context)
        positions = max(1, content_frames // 2)  # encoder positions holding audio
        tokenizer = get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages, language=language
        )
        prefix = _prefix(tokenizer, prompt, model.dims.n_text_ctx)
        text_from = len(prefix)  # index of the first forced text token
        tokens = prefix + list(forced)
        logits, kv_cache, cross_qk = model.decoder(mx.array([tokens]), features[None])
        heads = [tuple(h) for h in model.alignment_heads.tolist()]
        # Only two rows of the prefix's logits matter: at the start of text (the
        # no-speech probability) and the last (the first new token).
        rows = mx.array([tokens.index(tokenizer.sot), len(tokens) - 1])
        ends = np.array(logits[0, rows].astype(mx.float32))
        sot_probs = _softmax(ends[0])
        no_speech_prob = float(sot_probs[tokenizer.no_speech]) if tokenizer.no_speech else 0.0
        suppress = _suppress_mask(tokenizer, model.dims.n_vocab)
        stop_frame = round(stop_s * FRAMES_PER_S)
        beams = [_Beam([], 0.0, [], [_head_rows(cross_qk, heads, positions)[0]])]
        scores = ends[1:] + suppress  # one row per beam
        limit = min(max_new_tokens, model.dims.n_text_ctx - len(tokens) - 1)
        chosen, stopped, next_token = beams[0], False, None
        while len(beams[0].new) < limit:
            if not forced and not beams[0].new:
                scores[:, tokenizer.eot] = -np.inf  # a window with speech says something
            logp = scores - np.logaddexp.reduce(scores, axis=-1, keepdims=True)
            step = _next_beams(beams, logp, self.beams, tokenizer.eot, stop_frame)
            if isinstance(step, _Stop):
                chosen, stopped = beams[step.beam], step.reached_end
                next_token = step.token if stopped else None
                break
            sources, beams = step
            if sources != list(range(len(sources))):
                index = mx.array(sources)
                kv_cache = [((k[index], v[index]), cross) for (k, v), cross in kv_cache]
            logits, kv_cache, cross_qk = model.decoder(
                mx.array([[b.new[-1]] for b in beams]), features[None], kv_cache=kv_cache
            )
            attention = _head_rows(cross_qk, heads, positions)
            for b, rows_b in zip(beams, attention, strict=True):
                b.attention.append(rows_b)
            scores = np.array(logits[:, -1].astype(mx.float32)) + suppress
            chosen = beams[0]
        new = chosen.new
        self.generated_tokens += len(new)
        words: list[Word] = []
        if new:
            # Rows from the one that predicts the first text token through the
            # one that predicts what follows the last: Whisper's alignment matrix.
            weights = np.concatenate(chosen.attention, axis=1)
            text = list(forced) + new
            matrix = weights[:, text_from - 1 : text_from + len(text), :]
            # Token probabilities make the new words' probabilities; the forced
            # words are committed already, so theirs are never read.
            probs = [1.0] * len(forced) + [float(np.exp(np.float32(p))) for p in chosen.logprobs]
            timings = _word_timings(tokenizer, text, matrix, probs)
            words = _new_words(timings, len(forced), language not in _NO_SPACES)
        return Continuation(
            words=words,
            no_speech_prob=no_speech_prob,
            avg_logprob=float(np.mean(chosen.logprobs)) if chosen.logprobs else 0.0,
            reached_end=stopped,
            tokens=tuple(new),
            next_starts_word=(
                next_token is not None
                and language not in _NO_SPACES
                and tokenizer.decode([next_token]).startswith(" ")
            ),
        )

    def _decode(
        self, features: mx.array, content_frames: int, language: str, prompt: str
    ) -> tuple[DecodingResult, int]:
        duration_s = content_frames * HOP_LENGTH / SAMPLE_RATE
        # A repetition loop runs to Whisper's 224-token limit and costs seconds;
        # no real speech needs more tokens than this.
        sample_len = min(224, int(MAX_TOKENS_PER_S * duration_s) + 16)
        options = DecodingOptions(
            language=language,
            prompt=prompt or None,
            temperature=0.0,
            sample_len=sample_len,
            fp16=self.dtype == mx.float16,
        )
        return decode(self.model, features, options), sample_len


@dataclass
class _Beam:
    """One hypothesis of an AlignAtt decoding."""

    new: list[int]  # tokens past the forced prefix
    score: float  # their summed log probability
    logprobs: list[float]  # each one's
    # Alignment heads' attention, (heads, rows, positions) per decoder call; the
    # last row is the one that predicts the next token.
    attention: list[np.ndarray]
    _frame: int | None = None

    def attended_frame(self) -> int:
        """The frame the row predicting the next token attends to (computed once)."""
        if self._frame is None:
            self._frame = attended_frame(np.concatenate(self.attention, axis=1))
        return self._frame


@dataclass(frozen=True)
class _Stop:
    """The decoding ends on hypothesis ``beam``: end of text, or its attention at the stop."""

    beam: int
    reached_end: bool
    token: int  # the token that stopped it (not emitted)


def _next_beams(
    beams: list[_Beam], logp: np.ndarray, width: int, eot: int, stop_frame: int
) -> _Stop | tuple[list[int], list[_Beam]]:
    """One lockstep step of AlignAtt's beam search over ``logp`` (beams, vocab).

    The best continuation of all decides, as the greedy token does: end of
    text stops on its hypothesis, and so does any token of a hypothesis whose
    attention is at or past ``stop_frame`` (the token is not emitted). Else
    the ``width`` best continuations that neither end nor come from such a
    hypothesis go on. Returns the stop, or each new beam's source index and
    the new beams. With ``width`` 1 this is greedy decoding, token for token.
    """
    candidates = []  # (score, beam, token): ties go to the lower beam, then token
    for i, (beam, row) in enumerate(zip(beams, logp, strict=True)):
        n = min(width + 1, len(row))
        top = np.argpartition(-row, n - 1)[:n]
        for token in top[np.lexsort((top, -row[top]))]:
            candidates.append((beam.score + float(row[token]), i, int(token)))
    candidates.sort(key=lambda c: -c[0])
    _, best, token = candidates[0]
    if token == eot:
        return _Stop(best, reached_end=False, token=token)
    if reached_end(beams[best].attended_frame(), stop_frame):
        return _Stop(best, reached_end=True, token=token)
    sources, out = [], []
    for score, i, token in candidates:
        if token == eot or reached_end(beams[i].attended_frame(), stop_frame):
            continue
        b = beams[i]
        sources.append(i)
        out.append(_Beam(b.new + [token], score, b.logprobs + [float(logp[i, token])],
                         list(b.attention)))  # fmt: skip
        if len(out) == width:
            break
    return sources, out


def _prefix(tokenizer: Tokenizer, prompt: str, n_text_ctx: int) -> list[int]:
    """The decoder's start, as mlx-whisper builds it: the prompt, then the task, no timestamps."""
    out = []
    if prompt.strip():
        prompt_tokens = tokenizer.encode(" " + prompt.strip())
        out = [tokenizer.sot_prev, *prompt_tokens[-(n_text_ctx // 2 - 1) :]]
    return out + list(tokenizer.sot_sequence_including_notimestamps)


def _suppress_mask(tokenizer: Tokenizer, n_vocab: int) -> np.ndarray:
    """-inf on every token a transcript may not hold: control tokens (all but end
    of text), timestamps, and Whisper's non-speech symbols."""
    mask = np.zeros(n_vocab, np.float32)
    mask[tokenizer.eot + 1 :] = -np.inf
    mask[list(tokenizer.non_speech_tokens)] = -np.inf
    return mask


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _head_rows(cross_qk: list, heads: list[tuple[int, int]], positions: int) -> np.ndarray:
    """The alignment heads' attention over the audio positions, per batch row:
    (batch, heads, tokens, positions)."""
    qk = mx.stack([cross_qk[layer][:, head, :, :positions] for layer, head in heads], axis=1)
    return _softmax(np.array(qk.astype(mx.float32)))


# A sorting network for 7 values (16 compare-exchanges): index 3 ends up the median.
_SORT7 = ((0, 6), (2, 3), (4, 5), (0, 2), (1, 4), (3, 6), (0, 1), (2, 5), (3, 4), (1, 2), (4, 6),
          (2, 3), (4, 5), (1, 2), (3, 4), (5, 6))  # fmt: skip


def median_filter7(x: np.ndarray) -> np.ndarray:
    """mlx-whisper's ``median_filter(x, 7)`` (reflect-padded, along the last axis), exactly,
    by a sorting network of elementwise minima and maxima over the 7 shifted copies. SciPy's
    ``medfilt`` that it calls is a generic rank filter: on a GPU it was most of a step."""
    n = x.shape[-1]
    if n <= 3:
        return x
    padded = np.pad(x.astype(np.float32), [(0, 0)] * (x.ndim - 1) + [(3, 3)], mode="reflect")
    v = [padded[..., k : k + n] for k in range(7)]
    for i, j in _SORT7:
        v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
    return v[3]


def _word_timings(
    tokenizer: Tokenizer, text: list[int], matrix: np.ndarray, probs: list[float]
) -> list[WordTiming]:
    """Words of ``text`` with times, by DTW over the attention rows (as
    mlx-whisper's ``find_alignment``, on rows the decoding already made)."""
    mean = matrix.mean(axis=1, keepdims=True)
    std = matrix.std(axis=1, keepdims=True) + 1e-10
    weights = median_filter7((matrix - mean) / std).mean(axis=0)
    text_indices, time_indices = dtw(-weights)
    words, word_tokens = tokenizer.split_to_word_tokens(text + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    timings = [
        WordTiming(
            word, tokens, float(jump_times[a]), float(jump_times[b]), float(np.mean(probs[a:b]))
        )
        for word, tokens, a, b in zip(words, word_tokens, bounds[:-1], bounds[1:], strict=False)
    ]
    merge_punctuations(timings, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    return timings


def _new_words(timings: list[WordTiming], n_forced: int, spaced: bool) -> list[Word]:
    """The timed words that start past the first ``n_forced`` tokens, tokens attached."""
    timed = []
    seen = 0
    for t in timings:
        start, seen = seen, seen + len(t.tokens)
        if start >= n_forced:
            timed.append(
                {"word": t.word, "start": t.start, "end": t.end,
                 "probability": t.probability, "tokens": t.tokens}
            )  # fmt: skip
    return _join_continuations(timed, spaced, continues=n_forced > 0)


def _join_continuations(timed: list[dict], spaced: bool, continues: bool = False) -> list[Word]:
    """mlx-whisper's words as Words (with their tokens, where given); in a
    language written with spaces, a piece without a leading space continues the
    word before it (Whisper splits "ill-disposed" into "ill" and "-disposed").
    ``continues``: the words follow forced ones, so that a first piece without a
    space continues the last forced word: it comes out ``attached``."""
    words: list[Word] = []
    for w in timed:
        text = w["word"]
        if not text.strip():
            continue
        tokens = tuple(w.get("tokens", ()))
        if spaced and words and not text.startswith(" "):
            last = words[-1]
            p = min(last.probability, float(w["probability"]))
            words[-1] = Word(
                last.text + text.strip(), last.start_s, float(w["end"]), p,
                tokens=last.tokens + tokens,
            )  # fmt: skip
        else:
            attached = spaced and continues and not words and not text.startswith(" ")
            words.append(
                Word(text.strip(), float(w["start"]), float(w["end"]), w["probability"],
                     tokens=tokens, attached=attached)
            )  # fmt: skip
    return words


def _looped(result: DecodingResult, sample_len: int) -> bool:
    """Whisper ran to the token limit, or repeats itself."""
    return (
        len(result.tokens) >= sample_len - 1
        or result.compression_ratio > COMPRESSION_RATIO_MAX
        or loop_start([normalize(w) for w in result.text.split()]) is not None
    )
