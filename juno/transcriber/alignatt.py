"""AlignAtt: commit what Whisper says while its attention stays behind the audio's end.

The policy of ufal's SimulStreaming (and WhisperLiveKit's default). Each step
decodes the buffer once, with the words committed so far forced as the
decoder's prefix, and emits tokens until the cross-attention of Whisper's
alignment heads points within ``threshold`` encoder frames of the end of the
audio: past that point the model would be guessing at speech it has not heard
in full, so that token is dropped and decoding stops. The last word emitted may
still be cut off by the buffer's end (its first tokens came before the stop),
so it waits for the next step, unless the utterance is over (a pause, or the
end of the stream).

One decoder pass per step and no second hypothesis: the lag is about a step
shorter than LocalAgreement's, and the decoder only pays for new tokens.

Pure: :func:`attended_frame` is the alignment test the decoder loop
(``whisper_window.WhisperWindow.continue_decoding``) calls per token;
:class:`AlignAtt` keeps the commits. No MLX, no clock.
"""

from __future__ import annotations

import numpy as np

from juno.transcriber.commits import CommitLog
from juno.transcriber.words import Word, normalize

# Width of the median filter over frames, as Whisper's word alignment uses.
MEDIAN_FILTER_FRAMES = 7
# A last word said whole (Whisper's next token starts a new word) goes at once only
# when Whisper is this sure of it: on FLEURS the ones it got wrong without the rest
# of the sentence had 0.5-0.6 ("acolhido" for "a corrida").
WHOLE_MIN_PROBABILITY = 0.8


def attended_frame(weights: np.ndarray) -> int:
    """The encoder frame the newest token attends to most.

    ``weights``: the alignment heads' cross-attention probabilities over the
    audio frames, shaped (heads, tokens, frames), the newest token last. As in
    Whisper's word alignment, each frame is standardized over the tokens, the
    newest row median-filtered over frames, and the heads averaged.
    """
    mean = weights.mean(axis=1)
    std = weights.std(axis=1) + 1e-10
    row = (weights[:, -1, :] - mean) / std
    row = _median_filter(row, MEDIAN_FILTER_FRAMES)
    return int(np.argmax(row.mean(axis=0)))


# Encoder frames per second of audio (Whisper's encoder: one per 20 ms).
FRAMES_PER_S = 50
# At the end of an utterance the audio is all there: decode to the end, less
# this much (SimulStreaming's threshold for the last chunk: 4 frames).
FINAL_THRESHOLD_S = 0.08
# ...but no further than this past the last detected speech: a token that
# attends to the silence after the speech is Whisper making text up.
SPEECH_END_MARGIN_S = 0.3


def stop_s(
    buffer_s: float, threshold_s: float, speech_end_s: float | None, complete: bool
) -> float:
    """Where in the buffer (seconds from its start) a token's attention stops decoding.

    Mid-utterance: ``threshold_s`` before the buffer's end. At the utterance's
    end (``complete``): the buffer's end, but never past the last speech.
    """
    if not complete:
        return buffer_s - threshold_s
    end = buffer_s - FINAL_THRESHOLD_S
    if speech_end_s is not None:
        end = min(end, speech_end_s + SPEECH_END_MARGIN_S)
    return end


def reached_end(frame: int, stop_frame: int) -> bool:
    """The token attends at or past the frame where decoding stops."""
    return frame >= stop_frame


def _median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a sliding window of ``width`` along the last axis (edges reflected)."""
    half = width // 2
    if x.shape[-1] <= half:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1)


class AlignAtt(CommitLog):
    """The commits of the AlignAtt policy (see the module docstring).

    Committed words carry their tokens: :meth:`forced_tokens` is the prefix
    the next step's decoder must reproduce before it says anything new.
    """

    def forced_tokens(self) -> list[int]:
        """Tokens of the committed words still in the buffer, in order."""
        return [t for w in self._in_buffer for t in w.tokens]

    def __init__(
        self, pause_s: float = 1.0, min_probability: float = 0.0, settle_s: float = 1.0
    ) -> None:
        super().__init__(pause_s)
        # Mid-utterance, a word Whisper is less sure of waits for more audio...
        self.min_probability = min_probability
        # ...until this much audio after it has been heard.
        self.settle_s = settle_s

    def insert(
        self,
        words: list[Word],
        complete: bool = False,
        heard_s: float | None = None,
        whole: bool = False,
    ) -> list[Word]:
        """Take the words decoded past the forced prefix; return those committed.

        All but the last are committed: the buffer's end may have cut the last
        one short, unless ``whole`` (Whisper's next token starts a new word) and
        Whisper is sure of it (:data:`WHOLE_MIN_PROBABILITY`);
        and none from the first that Whisper gave less than
        ``min_probability``, unless ``settle_s`` of audio after it was heard
        (``heard_s``, stream time): the next step hears more of what follows.
        ``complete`` (a pause, or the end of the stream) commits them all, and
        the last ends a sentence.
        """
        words = [w for w in words if normalize(w.text)]
        sure_whole = whole and bool(words) and words[-1].probability >= WHOLE_MIN_PROBABILITY
        n = len(words) if complete or sure_whole else max(0, len(words) - 1)
        if not complete:
            heard = float("inf") if heard_s is None else heard_s
            sure = [
                w.probability >= self.min_probability or heard - w.end_s >= self.settle_s
                for w in words[:n]
            ]
            n = sure.index(False) if False in sure else n
        out = self._mark_ends(words, n, complete)
        self._pending = words[n:]
        self._commit(out)
        return out
