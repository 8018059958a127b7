"""Guards against Whisper's hallucinations in a window's words (pure: no MLX).

Whisper writes text where there is none: stock phrases learned from subtitles
on silent stretches ("Thank you.", "Thanks for watching!"), repetition loops,
words past the end of the audio. Each guard takes and returns stream-time words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from juno.transcriber.words import Word, normalize

# What Whisper says over silence, normalized (from its subtitle training data).
STOCK_PHRASES = frozenset(
    normalize(p)
    for p in (
        "Thank you.",
        "Thank you very much.",
        "Thanks for watching!",
        "Thank you for watching.",
        "Thank you so much for watching.",
        "Please subscribe.",
        "Bye.",
        "You",
        "Subtitles by the Amara.org community",
        "Untertitel im Auftrag des ZDF, 2017",
        "Untertitelung des ZDF, 2020",
        "Vielen Dank.",
        "Merci.",
        "Sous-titrage Société Radio-Canada",
        "Gracias.",
        "Obrigado.",
    )
)

# Decoder confidence below which a window is taken as silence (Whisper's own rule).
NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0
# A window whose text compresses this well is a repetition loop (Whisper's rule).
COMPRESSION_RATIO_MAX = 2.4

# Faster than anyone speaks (fast speech is 4-5 words a second).
MAX_WORDS_PER_SPEECH_S = 6.0

SpeechIn = Callable[[float, float], float]


def is_silence(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's own test: the no-speech token is likely and the text is not."""
    return no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOGPROB_FLOOR


def too_many_for_speech(words: list[Word], speech_s: float) -> bool:
    """More words than ``speech_s`` seconds of detected speech can hold.

    After an utterance, the voice detector's last fraction of a second can set
    Whisper off over near silence: it then squeezes a made-up sentence ("Das ist
    ein großer Dinosaurier.") into a few hundred milliseconds.
    """
    return len(words) > 1 + MAX_WORDS_PER_SPEECH_S * speech_s


def inside(words: list[Word], start_s: float, end_s: float, slack_s: float = 0.2) -> list[Word]:
    """Words that lie within the audio; ends that run past it are clamped."""
    out = []
    for w in words:
        if w.start_s < start_s - slack_s or w.start_s >= end_s:
            continue
        out.append(
            replace(w, start_s=max(w.start_s, start_s), end_s=min(w.end_s, end_s))
            if w.end_s > end_s or w.start_s < start_s
            else w
        )
    return out


def loop_start(keys: list[str], max_ngram: int = 8) -> int | None:
    """Index where a repetition loop starts in normalized words, or None.

    A single word may come three times in a row ("no, no, no"); a longer
    n-gram only twice. The index is just past the first copy.
    """
    for i in range(len(keys)):
        for n in range(1, max_ngram + 1):
            gram = keys[i : i + n]
            if len(gram) < n:
                break
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps > (3 if n == 1 else 2):
                return i + n
    return None


def cut_loops(words: list[Word]) -> list[Word]:
    """Cut the words where a repetition loop starts, keeping one copy."""
    at = loop_start([normalize(w.text) for w in words])
    return words if at is None else words[:at]


def cut_squeezed_repeat(
    words: list[Word], before: Sequence[Word] = (), max_s_per_word: float = 0.1
) -> list[Word]:
    """Cut the words where they say again, squeezed into (almost) no audio, the
    words just before them (``before``: the committed words they follow).

    At a pause Whisper may repeat the end of the forced prefix: "Captain David
    Brown" forced, then "Commander William McCool Captain David Brown Commander
    William McCool" decoded, the second copy timed 0 s a word. A phrase said
    twice takes the time it takes to say it, so only a squeezed copy is cut.
    """
    keys = [normalize(w.text) for w in (*before, *words)]
    k = len(before)
    for j in range(len(words)):
        at = k + j  # where a copy would start
        for n in range(2, min(at, len(keys) - at) + 1):
            copy = words[j : j + n]
            if keys[at - n : at] == keys[at : at + n] and (
                sum(w.end_s - w.start_s for w in copy) < n * max_s_per_word
            ):
                return words[:j]
    return words


def drop_doubtful_tail(words: list[Word], min_s: float = 0.1, min_p: float = 0.1) -> list[Word]:
    """Drop the last words while the alignment gave them (almost) no audio or
    Whisper gave them almost no probability.

    Words Whisper adds past the end of speech ("All right.", "Und dann,") get
    squeezed into the last frames, or come out at a few percent.
    """
    n = len(words)
    while n and (
        words[n - 1].end_s - words[n - 1].start_s < min_s or words[n - 1].probability < min_p
    ):
        n -= 1
    return words[:n]


def on_speech(words: list[Word], speech_s: SpeechIn, pad_s: float = 0.25) -> list[Word]:
    """Words whose span (widened by ``pad_s``) holds some detected speech."""
    return [w for w in words if speech_s(w.start_s - pad_s, w.end_s + pad_s) > 0]


def drop_stock_phrases(
    words: list[Word], speech_s: SpeechIn, gap_s: float = 0.5, min_cover: float = 0.5
) -> list[Word]:
    """Drop runs of words that are a stock phrase said over too little speech.

    A run is a stretch of words without a gap of ``gap_s``; "Thank you." over
    real speech (VAD covering ``min_cover`` of it) stays.
    """
    runs: list[list[Word]] = []
    for w in words:
        if runs and w.start_s - runs[-1][-1].end_s < gap_s:
            runs[-1].append(w)
        else:
            runs.append([w])
    out = []
    for run in runs:
        key = "".join(normalize(w.text) for w in run)
        span = max(run[-1].end_s - run[0].start_s, 1e-3)
        if key in STOCK_PHRASES and speech_s(run[0].start_s, run[-1].end_s) < min_cover * span:
            continue
        out.extend(run)
    return out


def clean(
    words: list[Word],
    start_s: float,
    end_s: float,
    speech_s: SpeechIn,
    before: Sequence[Word] = (),
) -> list[Word]:
    """All the guards, in order, on a window's words over audio [start_s, end_s)
    (``before``: the committed words they continue, as AlignAtt forces them).

    The doubtful tail is judged after the words without speech are gone: Whisper
    squeezes what it adds past the speech into its last frames ("gewachsen. Das
    ist ein bisschen", the last three at 0 s each) and writes more over the
    silence after, which only the speech test removes.
    """
    words = inside(words, start_s, end_s)
    words = cut_loops(words)
    words = cut_squeezed_repeat(words, before)
    words = on_speech(words, speech_s)
    words = drop_stock_phrases(words, speech_s)
    return drop_doubtful_tail(words)
