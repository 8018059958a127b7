"""Each manifest item through the streaming cores and through the offline cascade.

Speech, in each replay mode (``unaware``: compute is free; ``aware``: the clocks
also advance by measured compute): the transcriber replays the clip in
simulated real time (juno.transcriber.replay); then, for each target language
the item has a reference in and each k, the translator is fed every committed
word at its commit time (juno.eval.timeline). Offline: mlx-whisper on the whole
clip, then mlx-lm on each whole sentence of that transcript.

Text: the source words arrive one per tick and are translated as one sentence;
the delays are the source words read (compute-aware latency is for speech only).

A two-way conversation (``conversation.pair``, a manifest mixing its two
languages): each speech item's language is identified among the pair as the live
transcriber does it (the language most of its committed words carry, recorded as
``identified``), and its words are translated from that language into the other,
as the conversation's translator would route them; they are scored against the
item's reference in the other language of its true one.

An item's result is a plain record, ready for JSON: the report is built from
these records, and each is written out as soon as its item is done.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from juno.audio import SAMPLE_RATE_HZ
from juno.config import Config
from juno.eval.manifest import Item
from juno.eval.score import lagging, speech_delays_ms
from juno.eval.timeline import (
    Arrival,
    TimelineStats,
    Written,
    translate_timeline,
    translate_timeline_rows,
)
from juno.simul.policy import join_words

MODES = ("unaware", "aware")


@dataclass(frozen=True)
class Settings:
    """What one evaluation runs."""

    # Wait-k values, one streaming run each (the rest of the writer's options: the config's).
    ks: tuple[int, ...]
    # Target languages; None: every language an item has a reference in.
    targets: tuple[str, ...] | None = None
    # Replay modes for speech.
    modes: tuple[str, ...] = MODES
    # Audio fed per replay tick.
    chunk_s: float = 0.1
    # Also run the offline cascade (the ceiling).
    offline: bool = True
    # Also translate an item's target languages all at once, as one batch (juno.simul.batch).
    batch: bool = False


@dataclass(frozen=True)
class Heard:
    """What a streaming transcription of a clip gave the translator."""

    arrivals: list[Arrival]
    text: str
    # Stream time of the end of stream (after the last commit).
    end_s: float
    compute_s: float
    peak_bytes: int
    # Conversation: the language most of its words were heard in (None: no word, or one-way).
    identified: str | None = None


def _num(x: float | None) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return None if x is None or math.isnan(x) else x


class Evaluator:
    """Holds the models; turns one item into its record."""

    def __init__(self, cfg: Config, settings: Settings) -> None:
        self.cfg = cfg
        self.settings = settings
        self.whisper: Any = None
        self.whisper_path = None
        self.llm: Any = None
        self.tokenizer: Any = None
        self.llm_path = None
        self._translators: dict[tuple[str, str, int], Any] = {}
        self._batches: dict[tuple[str, tuple[str, ...], int], Any] = {}
        self.pair = tuple(cfg.pair)  # a two-way conversation's languages, or ()

    def _other(self, lang: str) -> str:
        """The other language of the conversation's pair."""
        return self.pair[1] if lang == self.pair[0] else self.pair[0]

    def targets(self, item: Item) -> list[str]:
        """Target languages this item is translated into: those with a reference."""
        chosen = self.settings.targets
        if self.pair and item.lang in self.pair:  # a conversation: into the other language
            other = self._other(item.lang)
            return [other] if other in item.translations and (not chosen or other in chosen) else []
        return sorted(t for t in item.translations if chosen is None or t in chosen)

    def load(self, items: list[Item]) -> None:
        """Load (and warm up) the models the items need, before anything is timed."""
        if any(i.kind == "speech" for i in items):
            from juno.models.loading import load_whisper, whisper_dtype
            from juno.transcriber.whisper_window import WhisperWindow

            self.whisper, self.whisper_path = load_whisper(self.cfg.transcribe.model, self.cfg)
            WhisperWindow(self.whisper).warm_up()
            if self.settings.offline:
                from mlx_whisper.transcribe import ModelHolder

                # mlx-whisper's transcribe keeps its own copy: load it now, untimed.
                ModelHolder.get_model(str(self.whisper_path), whisper_dtype())
        if any(self.targets(i) for i in items):
            from juno.models.loading import load_llm

            tc = self.cfg.translate
            self.llm, self.tokenizer, self.llm_path = load_llm(tc.model, self.cfg, tc.adapter)
            warm = self._translator("en", "fr", self.settings.ks[0])
            warm.feed("Hello.")
            warm.finish()

    def _translator(self, source: str, target: str, k: int) -> Any:
        """One translator per language pair and k; it is back at its prefix after each item."""
        key = (source, target, k)
        if key not in self._translators:
            from juno.simul.engine import StreamingTranslator
            from juno.simul.options import TranslateOptions
            from juno.simul.speculative import load_drafter

            options = replace(
                TranslateOptions.from_config(self.cfg, target), source_language=source, wait_k=k
            )
            drafter = load_drafter(options, self.cfg, self.tokenizer)
            self._translators[key] = StreamingTranslator(
                self.llm, self.tokenizer, options, drafter=drafter
            )
        return self._translators[key]

    def _batch(self, source: str, targets: tuple[str, ...], k: int) -> Any:
        """One batch translator per source, target languages and k (see :meth:`_translator`)."""
        key = (source, targets, k)
        if key not in self._batches:
            from juno.simul.batch import BatchTranslator
            from juno.simul.options import TranslateOptions

            options = replace(
                TranslateOptions.from_config(self.cfg, targets[0]),
                source_language=source,
                wait_k=k,
                draft="off",
            )
            self._batches[key] = BatchTranslator.create(self.llm, self.tokenizer, options, targets)
        return self._batches[key]

    def _batched(
        self,
        item: Item,
        record: dict,
        arrivals: list[Arrival],
        end_s: float,
        mode: str,
        progress: Callable[[str], None],
    ) -> list[tuple[dict, TimelineStats]]:
        """Every target of the item at once, one batch per k: a run per language, whose
        compute is the whole batch's (all its languages), and the batch's timeline stats."""
        targets = tuple(self.targets(item))
        if not self.settings.batch or len(targets) < 2:
            return []
        out = []
        for k in self.settings.ks:
            progress(f"{mode} wait-{k} {','.join(targets)} batched")
            batch = self._batch(item.lang, targets, k)
            stats = TimelineStats()
            peak = _reset_peak()
            rows = translate_timeline_rows(batch, arrivals, end_s, mode == "aware", stats)
            peak_bytes = peak()
            for row, target in enumerate(targets):
                written = rows[row]
                if item.kind == "speech":
                    delays = speech_delays_ms([w.time_s for w in written])
                else:
                    delays = [float(w.source_words) for w in written]
                run = _mt_run(target, k, mode, written, delays, record, item)
                run.update(setting=f"wait-{k} batched", languages=len(targets))
                run["first_word"] = _num(
                    (written[0].time_s if item.kind == "speech" else delays[0])
                    if written
                    else math.nan
                )
                run["peak_bytes"] = peak_bytes
                out.append((run, stats))
        return out

    # -- one item ---------------------------------------------------------------

    def run_item(self, item: Item, progress: Callable[[str], None] = lambda _: None) -> dict:
        """The item's record: transcripts, translations, latencies, compute, memory."""
        record: dict[str, Any] = {
            "id": item.id,
            "kind": item.kind,
            "lang": item.lang,
            "transcript_ref": item.transcript,
            "references": {t: item.translations[t] for t in self.targets(item)},
            "asr": [],
            "mt": [],
        }
        if item.kind == "speech":
            self._speech(item, record, progress)
        else:
            self._text(item, record, progress)
        return record

    def _speech(self, item: Item, record: dict, progress: Callable[[str], None]) -> None:
        from juno.audio import load_audio

        audio = load_audio(item.audio)
        audio_s = len(audio) / SAMPLE_RATE_HZ
        record.update(audio=str(item.audio), audio_s=audio_s, source_length=1000 * audio_s)
        record["unit"] = "ms"
        for mode in self.settings.modes:
            progress(f"{mode} transcription")
            heard = self._replay(item, audio, mode)
            asr_s, asr_peak = heard.compute_s, heard.peak_bytes
            record["asr"].append(_asr_run("streaming", mode, heard.text, asr_s, asr_peak))
            if heard.identified is not None or (self.pair and item.lang in self.pair):
                record["asr"][-1]["identified"] = heard.identified
            for target in self.targets(item):
                for k in self.settings.ks:
                    progress(f"{mode} wait-{k} {target}")
                    # A conversation writes from the language it heard into the other one.
                    source = heard.identified or item.lang
                    into = self._other(source) if self.pair and item.lang in self.pair else target
                    translator = self._translator(source, into, k)
                    stats = TimelineStats()
                    peak = _reset_peak()
                    drafts = _drafts(translator)
                    written = translate_timeline(
                        translator, heard.arrivals, heard.end_s, mode == "aware", stats
                    )
                    delays = speech_delays_ms([w.time_s for w in written])
                    run = _mt_run(target, k, mode, written, delays, record, item)
                    run.update(drafts(translator))
                    run["first_word"] = _num(written[0].time_s if written else math.nan)
                    run["compute_s"] = asr_s + stats.compute_s
                    run["rtf"] = run["compute_s"] / audio_s
                    run["peak_bytes"] = max(asr_peak, peak())
                    record["mt"].append(run)
            for run, stats in self._batched(
                item, record, heard.arrivals, heard.end_s, mode, progress
            ):
                run["compute_s"] = asr_s + stats.compute_s
                run["rtf"] = run["compute_s"] / audio_s
                run["peak_bytes"] = max(asr_peak, run["peak_bytes"])
                record["mt"].append(run)
        if self.settings.offline:
            self._speech_offline(item, audio, record, progress)

    def _replay(self, item: Item, audio: Any, mode: str) -> Heard:
        from juno.transcriber.build import make_transcriber
        from juno.transcriber.replay import ReplayStats, replay

        if self.pair and item.lang in self.pair:
            stepper = make_transcriber(self.whisper, self.cfg, languages=self.pair, language=None)
        else:
            stepper = make_transcriber(self.whisper, self.cfg, language=item.lang)
        stats = ReplayStats()
        peak = _reset_peak()
        emitted = list(replay(stepper, audio, self.settings.chunk_s, mode == "aware", stats))
        arrivals = [Arrival(e.emitted_s, e.word.text, e.word.sentence_end) for e in emitted]
        text = join_words(e.word for e in emitted)
        # The end of stream follows the last commit (the replay's finish).
        end_s = max([stats.audio_s, *(a.time_s for a in arrivals)])
        identified = None
        if self.pair and emitted:
            heard = [e.word.language for e in emitted]
            identified = max(self.pair, key=heard.count)
        return Heard(arrivals, text, end_s, stats.compute_s, peak(), identified)

    def _speech_offline(
        self, item: Item, audio: Any, record: dict, progress: Callable[[str], None]
    ) -> None:
        import mlx.core as mx
        import mlx_whisper

        from juno.models.loading import whisper_dtype

        progress("offline transcription")
        peak = _reset_peak()
        start = time.perf_counter()
        text = mlx_whisper.transcribe(
            audio,
            path_or_hf_repo=str(self.whisper_path),
            language=item.lang,
            fp16=whisper_dtype() == mx.float16,
        )["text"].strip()
        asr_s = time.perf_counter() - start
        asr_peak = peak()
        record["asr"].append(_asr_run("offline", "offline", text, asr_s, asr_peak))
        audio_s = record["audio_s"]
        for target in self.targets(item):
            progress(f"offline {target}")
            peak = _reset_peak()
            hyp, mt_s = self._offline_translation(text, item.lang, target, split=True)
            compute_s = asr_s + mt_s
            mem = max(asr_peak, peak())
            for mode in self.settings.modes:
                # The whole translation is shown once the clip is over (and, aware, computed).
                shown_s = audio_s + (compute_s if mode == "aware" else 0.0)
                written = [Written(w, shown_s, 0) for w in hyp.split()]
                delays = speech_delays_ms([w.time_s for w in written])
                run = _mt_run(target, None, mode, written, delays, record, item)
                run["first_word"] = shown_s if written else None
                run.update(compute_s=compute_s, rtf=compute_s / audio_s, peak_bytes=mem)
                record["mt"].append(run)

    def _offline_translation(
        self, text: str, source: str, target: str, split: bool
    ) -> tuple[str, float]:
        """Whole-sentence translation (each sentence of ``text`` when split): text, seconds."""
        from juno.simul.offline import translate_offline
        from juno.simul.sentences import sentences

        parts = [" ".join(s) for s in sentences(iter([text]))] if split else [text]
        start = time.perf_counter()
        out = [
            translate_offline(self.llm, self.tokenizer, self.cfg, part, source, target).text
            for part in parts
        ]
        return " ".join(o for o in out if o), time.perf_counter() - start

    # -- text -------------------------------------------------------------------

    def _text(self, item: Item, record: dict, progress: Callable[[str], None]) -> None:
        words = item.source.split()
        record.update(source=item.source, source_length=len(words), unit="words")
        # One word per tick; the sentence ends with its last word.
        arrivals = [
            Arrival(i + 1.0, w, sentence_end=i == len(words) - 1) for i, w in enumerate(words)
        ]
        for target in self.targets(item):
            for k in self.settings.ks:
                progress(f"wait-{k} {target}")
                stats = TimelineStats()
                peak = _reset_peak()
                translator = self._translator(item.lang, target, k)
                drafts = _drafts(translator)
                written = translate_timeline(translator, arrivals, float(len(words)), False, stats)
                delays = [float(w.source_words) for w in written]
                run = _mt_run(target, k, "unaware", written, delays, record, item)
                run.update(drafts(translator))
                run["first_word"] = delays[0] if delays else None
                run.update(compute_s=stats.compute_s, rtf=None, peak_bytes=peak())
                record["mt"].append(run)
            if self.settings.offline:
                progress(f"offline {target}")
                peak = _reset_peak()
                hyp, mt_s = self._offline_translation(item.source, item.lang, target, split=False)
                written = [Written(w, 0.0, len(words)) for w in hyp.split()]
                delays = [float(len(words))] * len(written)
                run = _mt_run(target, None, "unaware", written, delays, record, item)
                run["first_word"] = delays[0] if delays else None
                run.update(compute_s=mt_s, rtf=None, peak_bytes=peak())
                record["mt"].append(run)
        for run, stats in self._batched(
            item, record, arrivals, float(len(words)), "unaware", progress
        ):
            run.update(compute_s=stats.compute_s, rtf=None)
            record["mt"].append(run)


def _reset_peak() -> Callable[[], int]:
    """Reset MLX's peak memory counter; the returned call reads the peak since."""
    import mlx.core as mx

    mx.reset_peak_memory()
    return lambda: int(mx.get_peak_memory())


def _drafts(translator: Any) -> Callable[[Any], dict]:
    """The drafts proposed and accepted from now until the returned function is called."""
    stats = getattr(translator, "draft_stats", None)
    before = (stats.proposed, stats.accepted) if stats else (0, 0)

    def since(translator: Any) -> dict:
        if stats is None or not stats.proposed:
            return {}
        return {"drafted": stats.proposed - before[0], "accepted": stats.accepted - before[1]}

    return since


def _asr_run(setting: str, mode: str, text: str, compute_s: float, peak: int) -> dict:
    return {
        "setting": setting,
        "mode": mode,
        "text": text,
        "compute_s": compute_s,
        "peak_bytes": peak,
    }


def _mt_run(
    target: str,
    k: int | None,
    mode: str,
    written: list[Written],
    delays: list[float],
    record: dict,
    item: Item,
) -> dict:
    """A translation run's text and latency (the caller adds compute and memory)."""
    lag = lagging(delays, record["source_length"], item.translations.get(target))
    return {
        "target": target,
        "setting": f"wait-{k}" if k is not None else "offline",
        "k": k,
        "mode": mode,
        "text": " ".join(w.text for w in written),
        "delays": [round(d, 1) for d in delays],
        "al": _num(lag.al),
        "laal": _num(lag.laal),
    }
