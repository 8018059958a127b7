"""``juno eval`` end to end on the JFK clip with the real models (Whisper base, Qwen 0.5B)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.real_weights
def test_jfk_to_french(tmp_path, whisper_base_path, llm_05b_path):
    out = tmp_path / "out"
    # The project's example: JFK with a hand-written French reference.
    manifest = ROOT / "manifests" / "jfk-fr.jsonl"
    args = ["eval", str(manifest), "--wait-k", "3,5", "--out", str(out)]
    args += ["--whisper", str(whisper_base_path), "--llm", str(llm_05b_path)]
    done = subprocess.run(
        [sys.executable, "-m", "juno", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == {"items_done": 1, "items_total": 1, "interrupted": False}
    assert rep["run"]["models"]["whisper"]["name"] == whisper_base_path.name
    assert rep["run"]["settings"]["wait_k"] == [3, 5]
    assert rep["run"]["packages"]["mlx"] and rep["run"]["machine"]["backend"]

    asr = {(r["setting"], r["mode"]): r for r in rep["transcription"]}
    assert set(asr) == {("offline", "offline"), ("streaming", "unaware"), ("streaming", "aware")}
    assert asr["offline", "offline"]["wer"] <= 5
    assert asr["streaming", "unaware"]["wer"] <= 15
    assert 0 < asr["streaming", "unaware"]["rtf"] < 10

    rows = {(r["setting"], r["mode"]): r for r in rep["translation"]}
    settings = ("offline", "wait-3", "wait-5")
    assert set(rows) == {(s, m) for s in settings for m in ("unaware", "aware")}
    audio_ms = rep["items"][0]["source_length"]
    assert 10_000 < audio_ms < 12_000
    offline = rows["offline", "unaware"]
    assert offline["bleu"] > 5 and offline["al"] == pytest.approx(audio_ms)
    for k in (3, 5):
        unaware, aware = rows[f"wait-{k}", "unaware"], rows[f"wait-{k}", "aware"]
        assert unaware["empty"] == 0
        # Streaming starts before the clip ends; counting compute only delays it.
        assert 0 < unaware["first_word"] < audio_ms / 1000
        assert 0 < unaware["laal"] <= audio_ms
        assert aware["laal"] >= unaware["laal"] - 1000
        assert unaware["offline_bleu"] == offline["bleu"]
        assert unaware["peak_gb"] > 0
    # French comes out (the 0.5B model may stop early at small k: measured, not asserted).
    assert max(rows[f"wait-{k}", "unaware"]["chrf"] for k in (3, 5)) > 10
    # Wait-5 reads more before writing than wait-3.
    assert rows["wait-5", "unaware"]["first_word"] >= rows["wait-3", "unaware"]["first_word"]

    table = (out / "report.md").read_text()
    assert (
        "## Translation, speech en→fr (AL, LAAL in ms)" in table and "| wait-5 | aware |" in table
    )
    assert table in done.stdout
    png = (out / "quality-latency.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    from PIL import Image

    with Image.open(out / "quality-latency.png") as img:
        assert img.format == "PNG" and img.size[0] >= 400 and img.size[1] >= 300
    assert len((out / "items.jsonl").read_text().splitlines()) == 1
