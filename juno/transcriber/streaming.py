"""The streaming transcriber: feed audio and time, get committed words.

Every ``step_s`` of new audio (or all the audio that has arrived, when a step
took longer than that: the stepper catches up, it never queues) the buffer is
decoded under one of two policies:

- ``alignatt`` (the default, :mod:`juno.transcriber.alignatt`): one decoder
  pass with the committed words forced as prefix; new words are committed
  while Whisper's attention stays behind the audio's end;
- ``local-agreement`` (:mod:`juno.transcriber.agreement`): the whole buffer is
  re-transcribed and what the last two hypotheses agree on is committed.

Words are guarded against hallucinations. The buffer is cut at committed
sentence ends (and when it grows past ``buffer_max_s``); the text committed
before the buffer prompts the next window. Stretches without speech are never
transcribed. Time is passed in; nothing here reads a clock.

In a conversation (``languages``: the two spoken), each utterance's language is
identified among them from its first ``identify_speech_s`` of speech, and again
at every step until a word of it is committed: an early wrong guess is corrected
before anything is final. The committed words carry it; after a sentence end the
next utterance is identified anew, and text in the other language prompts nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from juno.errors import JunoError
from juno.transcriber import alignatt, guards
from juno.transcriber.agreement import LocalAgreement
from juno.transcriber.alignatt import AlignAtt
from juno.transcriber.vad import SAMPLE_RATE_HZ, SpeechTrack
from juno.transcriber.whisper_window import (
    MAX_TOKENS_PER_S,
    MAX_WINDOW_S,
    Continuation,
    WhisperWindow,
    WindowResult,
)
from juno.transcriber.words import Word

log = logging.getLogger(__name__)

POLICIES = ("alignatt", "local-agreement")
# A last word is said whole while speech follows it after at most this gap (Whisper's
# word ends run a little early; the gap between two words is shorter).
SPEECH_AFTER_GAP_S = 0.3
# The sound of a word can run this long past the end Whisper gives it.
WORD_TAIL_S = 0.5


@dataclass(frozen=True)
class StreamOptions:
    """How the stepper paces, cuts and gates (see TranscribeConfig)."""

    # New audio between two re-transcriptions of the buffer.
    step_s: float = 1.0
    # Longest audio buffer before it is cut at the last committed word.
    buffer_max_s: float = 15.0
    # Language of the speech (ISO 639-1), or None to detect it from the first speech.
    language: str | None = "en"
    # Silence after a word that makes it a sentence end and commits what is pending.
    sentence_pause_s: float = 0.8
    # Least detected speech that makes new audio worth transcribing.
    min_speech_s: float = 0.25
    # Audio kept before speech starts, so Whisper hears the onset.
    lead_in_s: float = 0.5
    # Decode the window that ends an utterance (committed on that one hypothesis)
    # on the full 30 s context. Off: it adds words after the speech (README).
    full_context_at_pause: bool = False
    # Commit policy: "alignatt" or "local-agreement" (see the module docstring).
    policy: str = "alignatt"
    # AlignAtt: a token attending within this many encoder frames (20 ms each)
    # of the audio's end is not emitted yet.
    frame_threshold: int = 25
    # AlignAtt: mid-utterance, a word Whisper gives less probability waits for more audio.
    min_word_probability: float = 0.5
    # AlignAtt: the longest such a word waits, in seconds of audio heard after it.
    doubtful_wait_s: float = 1.0
    # AlignAtt: an utterance's first words wait until this much of its speech is heard.
    onset_speech_s: float = 0.0
    # AlignAtt: the last word is committed at once when Whisper's next token starts a word.
    commit_at_word_boundary: bool = True
    # AlignAtt: an utterance's last decoding holding a word under this probability is
    # decoded again on the full context (0: never).
    recheck_full_ctx_below: float = 0.0
    # A conversation's languages (ISO 639-1): each utterance's is identified among them.
    languages: tuple[str, ...] = ()
    # Conversation: speech heard before an utterance's language is first identified.
    identify_speech_s: float = 1.0
    # Conversation: an identification less sure than this (its probability among the
    # languages) waits for more speech, up to identify_max_speech_s of it.
    identify_confidence: float = 0.9
    identify_max_speech_s: float = 3.0


class StreamingTranscriber:
    """Stepper in the whisper_streaming style: insert_audio, process, finish."""

    def __init__(self, window: WhisperWindow, track: SpeechTrack, options: StreamOptions) -> None:
        if not 0 < options.step_s < options.buffer_max_s <= MAX_WINDOW_S - options.step_s:
            raise JunoError(
                f"transcribe: need 0 < step ({options.step_s} s) < buffer_max_s "
                f"({options.buffer_max_s} s) <= {MAX_WINDOW_S:.0f} s - step"
            )
        if options.policy not in POLICIES:
            raise JunoError(
                f"transcribe.policy: unknown {options.policy!r} (one of {', '.join(POLICIES)})"
            )
        self.window = window
        self.track = track
        self.options = options
        self.policy: AlignAtt | LocalAgreement = (
            AlignAtt(
                options.sentence_pause_s, options.min_word_probability, options.doubtful_wait_s
            )
            if options.policy == "alignatt"
            else LocalAgreement(pause_s=options.sentence_pause_s)
        )
        self.language = None if options.languages else options.language
        self._identified = False  # conversation: a word of this utterance is committed
        self._prompt_language = self.language  # the language of the prompt's text
        self._sentence_end_s = 0.0  # conversation: end of the last sentence committed
        self.identifications = 0  # conversation: language identifications run
        self._audio = np.zeros(0, np.float32)  # the buffer
        self._waiting: list[np.ndarray] = []  # arrived, not in the buffer yet
        self._waiting_n = 0
        self._start_s = 0.0  # stream time of the first buffered sample
        self._stepped_s = 0.0  # audio end at the last step
        self.steps = 0  # windows transcribed, for reports

    @property
    def received_s(self) -> float:
        """Stream time up to which audio has been inserted."""
        return self.buffer_end_s + self._waiting_n / SAMPLE_RATE_HZ

    @property
    def waiting_s(self) -> float:
        """Seconds of audio inserted that no step has taken yet."""
        return self._waiting_n / SAMPLE_RATE_HZ

    @property
    def buffer_end_s(self) -> float:
        """Stream time at the end of the buffer (what the last step heard)."""
        return self._start_s + len(self._audio) / SAMPLE_RATE_HZ

    @property
    def buffer_s(self) -> float:
        """Seconds of audio in the buffer."""
        return len(self._audio) / SAMPLE_RATE_HZ

    def insert_audio(
        self, audio: np.ndarray, now_s: float, sample_rate_hz: int = SAMPLE_RATE_HZ
    ) -> None:
        """Append 16 kHz mono float32 samples (any count) that arrived by ``now_s``."""
        if sample_rate_hz != SAMPLE_RATE_HZ:
            raise JunoError(
                f"transcriber needs {SAMPLE_RATE_HZ} Hz audio, got {sample_rate_hz} Hz: resample"
            )
        if not isinstance(audio, np.ndarray) or audio.dtype != np.float32 or audio.ndim != 1:
            what = (
                f"{audio.dtype} array of shape {audio.shape}"
                if isinstance(audio, np.ndarray)
                else type(audio).__name__
            )
            raise JunoError(f"transcriber needs mono float32 samples (1-D), got {what}")
        if not np.all(np.isfinite(audio)):
            raise JunoError("transcriber got audio samples that are NaN or infinite")
        if len(audio):
            self._waiting.append(audio)
            self._waiting_n += len(audio)

    def process(self, now_s: float) -> list[Word]:
        """Words committed by a step, if ``step_s`` of new audio has arrived (else []).

        Steps are paced by audio time, not by ``now_s`` (the caller's clock).
        A step takes all the audio inserted so far, as much as a window holds:
        a stepper that fell behind catches up in one step, and a backlog longer
        than a window (a file sent as fast as it reads) goes in window-sized
        steps, losing nothing. Insert all that is waiting before calling this.
        """
        if self.received_s - self._stepped_s < self.options.step_s:
            return []
        out: list[Word] = []
        while True:
            out += self._take()
            out += self._step(final=False)
            if self._waiting_n < self.options.step_s * SAMPLE_RATE_HZ:
                return out

    def finish(self) -> list[Word]:
        """Transcribe what is left and commit every pending word (end of stream)."""
        out: list[Word] = []
        while True:
            out += self._take()
            last = not self._waiting_n
            out += self._step(final=last)
            if last:
                return out

    def _take(self) -> list[Word]:
        """Move waiting audio into the buffer, as much as a window holds (at
        least a step's worth), and score it for speech. Where it would not all
        fit, the buffer is first cut after its committed words: the words cut
        out, if any, are returned."""
        out = []
        if self.buffer_s + self._waiting_n / SAMPLE_RATE_HZ > self.options.buffer_max_s:
            out = self._cut(self.policy.last_end_s)
        room_s = max(self.options.step_s, self.options.buffer_max_s - self.buffer_s)
        audio = np.concatenate([self._audio, *self._waiting]) if self._waiting else self._audio
        keep = len(self._audio) + min(self._waiting_n, round(room_s * SAMPLE_RATE_HZ))
        taken = audio[len(self._audio) : keep]
        # In a conversation a pause may change the speaker: a step ends at the first
        # one, so that the next utterance's language is identified from it alone.
        pause_s = self.options.sentence_pause_s if self.options.languages else None
        keep = len(self._audio) + self.track.feed_to_pause(taken, pause_s)
        self._audio = audio[:keep]
        rest = audio[keep:]
        self._waiting = [rest] if len(rest) else []
        self._waiting_n = len(rest)
        return out

    def _step(self, final: bool) -> list[Word]:
        """One step; its committed words, each carrying the language it was heard in."""
        out = self._step_words(final)
        if not out:
            return out
        out = [replace(w, language=self.language or "") for w in out]
        if self.language != self._prompt_language:
            self.policy.forget_prompt()  # the other speaker's words prompt nothing
        self._prompt_language = self.language
        if self.options.languages:
            # Its language holds until the utterance's sentence ends; the next is identified.
            self._identified = not out[-1].sentence_end
            if not self._identified:
                self.language = None
                self._sentence_end_s = out[-1].end_s
        return out

    def _identify(self, complete: bool) -> bool:
        """Conversation: (re)identify the utterance's language among the pair from its
        audio so far, until a word of it is committed. False: too little speech yet.

        A turn changes at a pause: a sentence that follows the last one without a pause
        of ``sentence_pause_s`` is the same speaker's, in the same language (Whisper base
        named the second sentence of a German turn, and a citation "Oravec, 2002" at
        the end of another, English).

        An identification less sure than ``identify_confidence`` waits for more speech, up
        to ``identify_max_speech_s``. A ``complete`` utterance (a pause follows) shorter
        than ``identify_speech_s``, or over while still unsure, is too short to tell
        (Whisper names English for most of them): it is taken to be in the language of
        the words before it, a tail of the same speaker's turn."""
        opts = self.options
        if self._prompt_language is not None and not self.track.paused_since(
            self._sentence_end_s, opts.sentence_pause_s
        ):
            # The speaker went on after a sentence end without a pause: the same speaker.
            self.language = self._prompt_language
            return True
        from_s = max(self._start_s, self.policy.last_end_s)
        heard_s = self.track.speech_s(from_s, self.buffer_end_s)
        if heard_s < opts.identify_speech_s:
            if self.language is not None or not complete:
                return self.language is not None  # (a guess from an earlier step holds)
            if self._prompt_language is not None:
                self.language = self._prompt_language
                return True
        # The whole buffer: it starts at the last sentence's end, so it holds this utterance
        # (and a pause), and its encoding serves the step's decoding too.
        language, probability = self.window.identify(self._audio, opts.languages)
        self.identifications += 1
        if probability < opts.identify_confidence and heard_s < opts.identify_max_speech_s:
            if not complete:
                # Unsure (a quiet voice, a name): nothing is decoded until more is heard.
                self.language = None
                return False
            if self._prompt_language is not None:
                # Over before it could be told (a citation after a pause): the same speaker.
                language = self._prompt_language
        if language != self.language:
            log.info("utterance language: %s (%.2f)", language, probability)
        self.language = language
        return True

    def _start_at_onset(self) -> None:
        """Conversation, before an utterance's language is settled: the buffer starts a
        lead-in before its speech, when a pause separates it from what came before: the
        previous speaker's last syllable, or words made up over the pause (dropped: a
        step ended at the pause and committed what was said). Its language is identified
        from it alone, and it is decoded alone."""
        onset = self.track.onset_s(self.options.sentence_pause_s)
        if onset is None or onset - self.options.lead_in_s <= self._start_s:
            return
        self._cut(onset - self.options.lead_in_s, rescue=False)

    def _prompt(self) -> str:
        """The committed text before the buffer, if it is in this utterance's language."""
        if self.options.languages and self._prompt_language != self.language:
            return ""
        return self.policy.prompt()

    def _step_words(self, final: bool) -> list[Word]:
        opts = self.options
        end_s = self.buffer_end_s
        self._stepped_s = end_s
        new_from = max(self._start_s, self.policy.last_end_s)
        if self.policy.at_sentence_start:
            # Whisper ends a word early: the rest of its sound, after a sentence end, is no
            # new speech (decoded alone, with the sentence as prompt, it gave that again).
            new_from = self.track.tail_end_s(new_from, WORD_TAIL_S)
        if self.track.speech_s(new_from, end_s) < opts.min_speech_s and not self.policy.pending:
            # Nothing new was said: keep only a lead-in for the next speech onset.
            return self._cut(max(end_s - opts.lead_in_s, self.policy.last_end_s))
        last_speech = self.track.last_speech_end_s()
        # After a long pause (or at the end) the hypothesis holds the whole
        # utterance: commit it now instead of waiting for a second opinion.
        complete = final or last_speech is None or end_s - last_speech >= opts.sentence_pause_s
        if opts.languages and not self._identified:
            self._start_at_onset()
            if not self._identify(complete):
                return []  # the utterance's language is not known yet: nothing to decode
        elif self.language is None:
            self.language = self.window.detect_language(self._audio)
            log.info("detected language: %s", self.language)
        out = (
            self._continue(complete) if isinstance(self.policy, AlignAtt) else self._agree(complete)
        )
        self.steps += 1
        if opts.languages and not self._identified and complete and not out:
            # The utterance ended with nothing said (a tail of sound): its language, a guess,
            # is not the next speaker's.
            self.language = None
        cut = self.policy.sentence_cut_s()
        if cut is None and self.buffer_s > opts.buffer_max_s - opts.step_s:
            # No sentence end to cut at: cut at the last committed word, and at
            # least half the buffer (pending words before the cut get committed).
            cut = max(self.policy.last_end_s, end_s - opts.buffer_max_s / 2)
        if cut is not None:
            out += self._cut(cut)
        return out

    def _agree(self, complete: bool) -> list[Word]:
        """LocalAgreement: transcribe the whole buffer; commit what agrees."""
        result = self.window.transcribe(
            self._audio,
            self.language,
            self._prompt(),
            full_context=complete and self.options.full_context_at_pause,
        )
        words = self._clean(result)
        return self.policy.insert(words, complete)

    def _continue(self, complete: bool) -> list[Word]:
        """AlignAtt: decode past the committed words; commit what was heard in full."""
        assert isinstance(self.policy, AlignAtt)
        unheard_s = self.buffer_end_s - max(self._start_s, self.policy.last_end_s)
        heard = self.track.speech_s(max(self._start_s, self.policy.last_end_s), self.buffer_end_s)
        if not complete and self.policy.at_sentence_start and heard < self.options.onset_speech_s:
            return []  # an utterance's first words: too little of it heard to decode yet
        speech_end = self.track.last_speech_end_s()
        stop = alignatt.stop_s(
            self.buffer_s,
            self.options.frame_threshold / alignatt.FRAMES_PER_S,
            None if speech_end is None else speech_end - self._start_s,
            complete,
        )
        args = (
            self._audio,
            self.language,
            self._prompt(),
            self.policy.forced_tokens(),
            stop,
            int(MAX_TOKENS_PER_S * unheard_s) + 8,
        )
        full_context = complete and self.options.full_context_at_pause
        result = self.window.continue_decoding(*args, full_context=full_context)
        words = self._clean(result, forced=True)
        doubtful = [w for w in words if w.probability < self.options.recheck_full_ctx_below]
        if complete and doubtful and self.window.fit_context and not full_context:
            # The utterance's last decoding, unsure of a word: a fitted context is not what
            # Whisper was trained on, and its words there differ from the whole clip's now
            # and then ("ill-sposed" for "ill-disposed"); decode it again on the full 30 s.
            log.debug("doubtful %s: decoded again on the full context", doubtful)
            result = self.window.continue_decoding(*args, full_context=True)
            words = self._clean(result, forced=True)
        if guards.too_many_for_speech(words, heard):
            log.info("dropped %d words said over %.2f s of speech", len(words), heard)
            words = []
        # Whisper's next token starts a new word: the last one it said is whole (unless
        # a guard dropped words, which leaves the boundary unknown). In a conversation an
        # utterance's first words still wait: the language is identified at every step
        # until one of them is committed, and it needs that audio.
        # And the speaker goes on after it: a last word followed by silence may end the
        # utterance, and Whisper adds its full stop only once it hears the pause (a word
        # sent without one leaves the sentence open downstream).
        whole = (
            self.options.commit_at_word_boundary
            and result.next_starts_word
            and len(words) == len(result.words)
            and (self._identified or not self.options.languages)
            and bool(words)
            and self.track.speech_s(words[-1].end_s + SPEECH_AFTER_GAP_S, self.buffer_end_s) > 0
        )
        return self.policy.insert(words, complete, heard_s=self._start_s + stop, whole=whole)

    def _clean(self, result: WindowResult | Continuation, forced: bool = False) -> list[Word]:
        """The window's words in stream time, less what Whisper made up (``forced``: they
        continue the committed words in the buffer)."""
        if guards.is_silence(result.no_speech_prob, result.avg_logprob):
            return []
        at = self._start_s
        words = [replace(w, start_s=w.start_s + at, end_s=w.end_s + at) for w in result.words]
        before = self.policy.in_buffer if forced else []
        return guards.clean(words, at, self.buffer_end_s, self.track.speech_s, before)

    def _cut(self, cut_s: float, rescue: bool = True) -> list[Word]:
        """Drop buffered audio before ``cut_s``; return pending words that had to be
        committed (not ``rescue``: they are dropped)."""
        n = int(round((cut_s - self._start_s) * SAMPLE_RATE_HZ))
        if n <= 0:
            return []
        n = min(n, len(self._audio))
        self._audio = self._audio[n:]
        self._start_s += n / SAMPLE_RATE_HZ
        self.track.forget_before(self._start_s)
        return self.policy.trim(self._start_s, rescue)
