"""``juno eval`` reports: figures from item records, Markdown, the PNG plot, Ctrl-C.

A fake evaluator stands in for the models here; one test runs the real
evaluator on text items with a tiny random-weight LLM.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from juno.cli import main
from juno.eval import report as report_mod
from juno.eval import run as run_mod
from juno.eval.plot import plot
from juno.eval.run import _asr_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FR = "ne demandez pas ce que vous"


def _mt(setting, k, mode, text, delays, al, first, compute_s=1.0):
    return {
        "target": "fr",
        "setting": setting,
        "k": k,
        "mode": mode,
        "text": text,
        "delays": delays,
        "al": al,
        "laal": al,
        "first_word": first,
        "compute_s": compute_s,
        "rtf": compute_s / 2.0,
        "peak_bytes": 2_000_000_000,
    }


def speech_record(name: str) -> dict:
    """A 2 s clip, a 6-word reference; wait-1 writes 2 words at 0.5 s and 1 s."""
    return {
        "id": name,
        "kind": "speech",
        "lang": "en",
        "transcript_ref": "Ask not what.",
        "references": {"fr": FR},
        "audio": "clip.flac",
        "audio_s": 2.0,
        "source_length": 2000.0,
        "unit": "ms",
        "asr": [
            _asr_run("streaming", "unaware", "ask not", 1.0, 1_000_000_000),
            _asr_run("offline", "offline", "Ask not what", 0.5, 1_500_000_000),
        ],
        "mt": [
            _mt("offline", None, "unaware", FR, [2000.0] * 6, 2000.0, 2.0),
            # AL: 500 - 0 and 1000 - 2000/6, tau = 2 -> 583.33 ms.
            _mt("wait-1", 1, "unaware", "ne demandez", [500.0, 1000.0], 583.333, 0.5),
            _mt("wait-3", 3, "unaware", FR, [1500.0] + [2000.0] * 5, 1500.0, 1.5),
            _mt("wait-3", 3, "aware", "", [], None, None),
        ],
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    try:
        from PIL import Image
    except ImportError:
        return width, height
    with Image.open(path) as img:
        img.verify()
        assert img.format == "PNG" and img.size == (width, height)
    return width, height


def test_rows_hold_corpus_figures_and_the_offline_ceiling():
    rep = report_mod.build([speech_record("a"), speech_record("b")], {}, 3, interrupted=True)
    assert rep["status"] == {"items_done": 2, "items_total": 3, "interrupted": True}
    asr = {(r["setting"], r["mode"]): r for r in rep["transcription"]}
    assert asr["offline", "offline"]["wer"] == 0.0
    assert asr["streaming", "unaware"]["wer"] == pytest.approx(100 / 3)  # "what" deleted
    assert asr["streaming", "unaware"]["rtf"] == pytest.approx(0.5)
    mt = {(r["setting"], r["mode"]): r for r in rep["translation"]}
    assert [(r["setting"], r["mode"]) for r in rep["translation"]] == [
        ("offline", "unaware"),
        ("wait-1", "unaware"),
        ("wait-3", "unaware"),
        ("wait-3", "aware"),
    ]
    assert mt["offline", "unaware"]["bleu"] == pytest.approx(100.0)
    assert mt["wait-1", "unaware"]["al"] == pytest.approx(583.333)
    assert mt["wait-1", "unaware"]["first_word"] == pytest.approx(0.5)
    assert mt["wait-1", "unaware"]["offline_bleu"] == pytest.approx(100.0)
    # An empty output is counted and has no latency.
    assert mt["wait-3", "aware"]["empty"] == 2 and mt["wait-3", "aware"]["al"] is None
    assert "nrefs:1" in rep["signatures"]["fr"]["bleu"]
    json.dumps(rep, allow_nan=False)


def test_markdown_tables_and_plot(tmp_path):
    rep = report_mod.build([speech_record("a")], {"settings": {"phi": "source"}}, 1, False)
    text = report_mod.markdown(rep)
    assert "## Transcription" in text and "## Translation, speech en→fr (AL, LAAL in ms)" in text
    assert "| wait-1 | unaware | 1 | " in text and "| 583 | 583 | 0.50 |" in text
    assert "offline (whole clip)" in text and "BLEU `nrefs:1" in text
    assert plot(rep["translation"], tmp_path / "plot.png")
    assert _png_size(tmp_path / "plot.png") == (520, 400)


def test_no_plot_without_translations(tmp_path):
    record = speech_record("a") | {"mt": [], "references": {}}
    rep = report_mod.build([record], {}, 1, False)
    assert not plot(rep["translation"], tmp_path / "plot.png")
    assert "## Translation" not in report_mod.markdown(rep)


class FakeEvaluator:
    """Records without models; Ctrl-C arrives during item ``interrupt_at`` (1-based)."""

    interrupt_at: int | None = None

    def __init__(self, cfg, settings) -> None:
        self.settings = settings
        self.whisper_path = self.llm_path = None
        self.done = 0

    def load(self, items) -> None:
        pass

    def run_item(self, item, progress) -> dict:
        self.done += 1
        if self.done == self.interrupt_at:
            raise KeyboardInterrupt
        progress("fake")
        return speech_record(item.id)


def _manifest(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "m.jsonl"
    lines = [{"id": f"s{i}", "lang": "en", "source": "Ask not."} for i in range(n)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_a_run_writes_items_report_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_mod, "Evaluator", FakeEvaluator)
    out = tmp_path / "out"
    args = ["eval", str(_manifest(tmp_path, 2)), "--out", str(out), "--wait-k", "1,3"]
    assert main([*args, "--phi", "7"]) == 0
    assert len((out / "items.jsonl").read_text().splitlines()) == 2
    rep = json.loads((out / "report.json").read_text())
    assert rep["run"]["settings"]["wait_k"] == [1, 3] and rep["run"]["settings"]["phi"] == 7
    assert rep["run"]["packages"]["sacrebleu"] and rep["run"]["machine"]["cpus"]
    assert rep["run"]["config"]["translate"]["model"]
    assert rep["run"]["manifest"]["items"] == 2 and len(rep["run"]["manifest"]["sha256"]) == 64
    assert (out / "report.md").read_text() in capsys.readouterr().out
    _png_size(out / "quality-latency.png")


def test_ctrl_c_keeps_the_items_done(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_mod, "Evaluator", FakeEvaluator)
    monkeypatch.setattr(FakeEvaluator, "interrupt_at", 3)
    out = tmp_path / "out"
    assert main(["eval", str(_manifest(tmp_path, 5)), "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [json.loads(x)["id"] for x in (out / "items.jsonl").read_text().splitlines()] == [
        "s0",
        "s1",
    ]
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == {"items_done": 2, "items_total": 5, "interrupted": True}
    assert "2 of 5 items (interrupted)" in (out / "report.md").read_text()
    assert (out / "quality-latency.png").exists()


def test_text_items_through_the_real_evaluator(tmp_path, tiny_llm):
    manifest = tmp_path / "text.json"
    items = [
        {"id": "one", "lang": "en", "source": "Ask not what your country can do for you.",
         "translations": {"fr": "Ne demandez pas ce que votre pays peut faire pour vous."}},
        {"id": "two", "lang": "en", "source": "Hello there.", "translations": {"de": "Hallo."}},
    ]  # fmt: skip
    manifest.write_text(json.dumps(items))
    out = tmp_path / "out"
    args = ["eval", str(manifest), "--out", str(out), "--llm", str(tiny_llm), "--wait-k", "1,2"]
    # Plain wait-k (with the writer's guards a random model mostly wants to stop, and reads;
    # after the example turns it writes only line breaks), short words (a random model's
    # words run to the token cap).
    plain = ["--set", "translate.one_line=false", "--set", "translate.read_on_end=false"]
    plain += ["--set", "translate.examples=0", "--set", "translate.no_repeat_ngram=0"]
    plain += ["--set", "translate.phi=source"]
    plain += ["--set", "translate.max_tokens_per_word=3"]
    assert main(args + plain) == 0
    rep = json.loads((out / "report.json").read_text())
    rows = {(r["target"], r["setting"]): r for r in rep["translation"]}
    assert set(rows) == {(t, s) for t in ("fr", "de") for s in ("offline", "wait-1", "wait-2")}
    assert all(r["kind"] == "text" and r["unit"] == "words" for r in rows.values())
    assert rep["transcription"] == [] and rep["run"]["models"]["llm"]["name"] == "tiny-qwen2"
    assert rep["run"]["models"]["llm"]["adapter"] is None
    one = json.loads((out / "items.jsonl").read_text().splitlines()[0])
    for run in one["mt"]:
        n = 9  # source words
        assert all(1 <= d <= n for d in run["delays"])
        assert len(run["delays"]) == len(run["text"].split())
        if run["setting"] == "wait-2" and run["delays"]:
            assert run["delays"][0] >= 2
    _png_size(out / "quality-latency.png")


def test_draft_acceptance_is_reported_where_drafts_ran():
    a, b = speech_record("a"), speech_record("b")
    a["mt"][2].update(drafted=10, accepted=6)  # wait-3 unaware, with drafts
    b["mt"][2].update(drafted=10, accepted=2)
    rep = report_mod.build([a, b], {}, 2, False)
    rows = {(r["setting"], r["mode"]): r for r in rep["translation"]}
    assert rows[("wait-3", "unaware")]["draft_acceptance"] == 0.4
    assert rows[("wait-1", "unaware")]["draft_acceptance"] is None
    text = report_mod.markdown(rep)
    assert "draft acceptance" in text and "| 0.40 |" in text
    assert "draft acceptance" not in report_mod.markdown(
        report_mod.build([speech_record("c")], {}, 1, False)
    )


def test_batched_languages_write_what_each_writes_alone(tmp_path, tiny_llm):
    """``--batch``: an item's languages at once give each language's own words, and one
    compute figure for the batch."""
    manifest = tmp_path / "text.json"
    item = {"id": "one", "lang": "en", "source": "Ask not what your country can do for you.",
            "translations": {"fr": "Ne demandez pas ce que votre pays peut faire pour vous.",
                             "de": "Fragt nicht, was euer Land für euch tun kann."}}  # fmt: skip
    manifest.write_text(json.dumps([item]))
    out = tmp_path / "out"
    args = ["eval", str(manifest), "--out", str(out), "--llm", str(tiny_llm), "--wait-k", "2"]
    args += ["--batch", "--no-offline"]
    plain = ["--set", "translate.one_line=false", "--set", "translate.read_on_end=false"]
    plain += ["--set", "translate.examples=0", "--set", "translate.no_repeat_ngram=0"]
    plain += ["--set", "translate.max_tokens_per_word=3"]
    assert main(args + plain) == 0
    runs = json.loads((out / "items.jsonl").read_text().splitlines()[0])["mt"]
    by = {(r["target"], r["setting"]): r for r in runs}
    assert set(by) == {(t, s) for t in ("fr", "de") for s in ("wait-2", "wait-2 batched")}
    for target in ("fr", "de"):
        alone, batched = by[(target, "wait-2")], by[(target, "wait-2 batched")]
        assert batched["text"] and batched["text"] == alone["text"]
        assert batched["delays"] == alone["delays"] and batched["languages"] == 2
    assert by[("fr", "wait-2 batched")]["compute_s"] == by[("de", "wait-2 batched")]["compute_s"]
    rep = json.loads((out / "report.json").read_text())
    settings = [(r["target"], r["setting"]) for r in rep["translation"]]
    assert settings.index(("fr", "wait-2 batched")) == settings.index(("fr", "wait-2")) + 1


def test_a_conversations_identification_is_reported_per_spoken_language():
    en, fr, other = speech_record("en-1"), speech_record("fr-1"), speech_record("en-2")
    fr["lang"] = "fr"
    for rec, heard in ((en, "en"), (fr, "en"), (other, "en")):
        for run in rec["asr"]:
            if run["setting"] == "streaming":
                run["identified"] = heard
    rep = report_mod.build([en, fr, other], {}, 3, False)
    rows = {(r["lang"], r["mode"]): (r["items"], r["right"]) for r in rep["identification"]}
    assert rows[("en", "unaware")] == (2, 2) and rows[("fr", "unaware")] == (1, 0)
    text = report_mod.markdown(rep)
    assert "## Language identification (conversation)" in text
    assert report_mod.build([speech_record("c")], {}, 1, False)["identification"] == []
