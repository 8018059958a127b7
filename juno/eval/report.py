"""The report: corpus figures from the item records, as JSON and as Markdown tables.

Rows are built from the records alone (the lines of ``items.jsonl``), so an
interrupted run reports the items it finished. Per source language:
transcription rows (WER); per kind, language pair, setting (offline or wait-k)
and replay mode: translation rows (BLEU, chrF, AL, LAAL, time to the first
translated word, real-time factor, peak memory). The offline row of a table is
the ceiling of the streaming rows below it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path

from juno.eval.metrics import corpus_mean
from juno.eval.score import corpus_quality, corpus_wer

FORMAT_VERSION = 1
GB = 1e9
MODE_ORDER = {"offline": 0, "unaware": 1, "aware": 2}


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def _setting_order(setting: str) -> tuple[int, int, bool]:
    """offline, then by k; a batched run ("wait-3 batched") after the one-language run."""
    if setting == "offline":
        return (0, 0, False)
    k, _, batched = setting.removeprefix("wait-").partition(" ")
    return (1, int(k), bool(batched))


def transcription_rows(records: list[dict]) -> list[dict]:
    """WER, real-time factor and peak memory per source language, setting and mode."""
    groups: dict[tuple[str, str, str], list[tuple[dict, dict]]] = {}
    for rec in records:
        for run in rec.get("asr", []):
            key = (rec["lang"], run["setting"], run["mode"])
            groups.setdefault(key, []).append((rec, run))
    rows = []
    for (lang, setting, mode), pairs in groups.items():
        audio_s = sum(rec["audio_s"] for rec, _ in pairs)
        compute_s = sum(run["compute_s"] for _, run in pairs)
        refs = [rec["transcript_ref"] for rec, _ in pairs]
        rows.append(
            {
                "lang": lang,
                "setting": setting,
                "mode": mode,
                "items": len(pairs),
                "audio_s": audio_s,
                "wer": _num(corpus_wer(refs, [run["text"] for _, run in pairs])),
                "rtf": compute_s / audio_s if audio_s else None,
                "peak_gb": max(run["peak_bytes"] for _, run in pairs) / GB,
                "draft_acceptance": _acceptance(run for _, run in pairs),
            }
        )
    rows.sort(key=lambda r: (r["lang"], r["setting"] != "offline", MODE_ORDER.get(r["mode"], 9)))
    return rows


def translation_rows(records: list[dict]) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """Quality and latency per kind, language pair, setting and mode; sacrebleu signatures."""
    groups: dict[tuple[str, str, str, str, str], list[tuple[dict, dict]]] = {}
    for rec in records:
        for run in rec.get("mt", []):
            key = (rec["kind"], rec["lang"], run["target"], run["setting"], run["mode"])
            groups.setdefault(key, []).append((rec, run))
    rows, signatures = [], {}
    for (kind, lang, target, setting, mode), pairs in groups.items():
        hyps = [run["text"] for _, run in pairs]
        refs = [rec["references"][target] for rec, _ in pairs]
        quality = corpus_quality(hyps, refs, target)
        signatures[target] = {"bleu": quality.bleu_signature, "chrf": quality.chrf_signature}
        audio_s = sum(rec.get("audio_s") or 0.0 for rec, _ in pairs)
        compute_s = sum(run["compute_s"] for _, run in pairs)
        rows.append(
            {
                "kind": kind,
                "source": lang,
                "target": target,
                "setting": setting,
                "k": pairs[0][1]["k"],
                "mode": mode,
                "items": len(pairs),
                "empty": sum(not h.strip() for h in hyps),
                "bleu": quality.bleu,
                "chrf": quality.chrf,
                "unit": pairs[0][0]["unit"],
                "al": _num(corpus_mean([_nan(run["al"]) for _, run in pairs])),
                "laal": _num(corpus_mean([_nan(run["laal"]) for _, run in pairs])),
                "first_word": _mean(run["first_word"] for _, run in pairs),
                "compute_s_per_item": compute_s / len(pairs),
                "rtf": compute_s / audio_s if kind == "speech" and audio_s else None,
                "peak_gb": max(run["peak_bytes"] for _, run in pairs) / GB,
                "draft_acceptance": _acceptance(run for _, run in pairs),
            }
        )
    rows.sort(
        key=lambda r: (
            r["kind"],
            r["source"],
            r["target"],
            _setting_order(r["setting"]),
            MODE_ORDER.get(r["mode"], 9),
        )
    )
    _add_ceilings(rows)
    return rows, signatures


def identification_rows(records: list[dict]) -> list[dict]:
    """A conversation's language identification per spoken language and mode: items whose
    words were heard in their own language (see juno.eval.run)."""
    groups: dict[tuple[str, str], list[bool]] = {}
    for rec in records:
        for run in rec.get("asr", []):
            if "identified" in run:
                key = (rec["lang"], run["mode"])
                groups.setdefault(key, []).append(run["identified"] == rec["lang"])
    return [
        {"lang": lang, "mode": mode, "items": len(right), "right": sum(right),
         "accuracy": sum(right) / len(right)}
        for (lang, mode), right in sorted(groups.items())
    ]  # fmt: skip


def _acceptance(runs) -> float | None:
    """Drafted tokens the writer kept (speculative writing), None without drafts."""
    runs = list(runs)
    drafted = sum(run.get("drafted", 0) for run in runs)
    return sum(run.get("accepted", 0) for run in runs) / drafted if drafted else None


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def _add_ceilings(rows: list[dict]) -> None:
    """Each streaming row gets the offline BLEU and chrF of the same pair beside it."""
    offline = {(r["kind"], r["source"], r["target"]): r for r in rows if r["setting"] == "offline"}
    for r in rows:
        best = offline.get((r["kind"], r["source"], r["target"]))
        if best is not None and r["setting"] != "offline":
            r["offline_bleu"], r["offline_chrf"] = best["bleu"], best["chrf"]


def build(records: list[dict], run_info: dict, total_items: int, interrupted: bool) -> dict:
    """The whole report as plain data."""
    translation, signatures = translation_rows(records)
    return {
        "format": FORMAT_VERSION,
        "run": run_info,
        "status": {
            "items_done": len(records),
            "items_total": total_items,
            "interrupted": interrupted,
        },
        "transcription": transcription_rows(records),
        "identification": identification_rows(records),
        "translation": translation,
        "signatures": signatures,
        "items": records,
    }


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- Markdown -------------------------------------------------------------------


def _cell(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(report: dict) -> str:
    """Tables a person can read: transcription, then one per language pair."""
    run, status = report["run"], report["status"]
    models = run.get("models", {})
    lines = ["# Juno evaluation", ""]
    names = ", ".join(f"{role} `{m.get('name') or m.get('spec')}`" for role, m in models.items())
    lines.append(
        f"Manifest `{run.get('manifest', {}).get('path', '?')}`, "
        f"{status['items_done']} of {status['items_total']} items"
        + (" (interrupted)" if status["interrupted"] else "")
        + (f"; {names}" if names else "")
        + f"; φ = {run.get('settings', {}).get('phi', '?')}."
    )
    if report["transcription"]:
        lines += ["", "## Transcription", ""]
        rows = [
            [
                r["lang"],
                "offline (whole clip)" if r["setting"] == "offline" else "streaming",
                "–" if r["mode"] == "offline" else r["mode"],
                str(r["items"]),
                _cell(r["audio_s"]),
                _cell(r["wer"]),
                _cell(r["rtf"], 2),
                _cell(r["peak_gb"], 2),
            ]
            for r in report["transcription"]
        ]
        head = ["lang", "setting", "mode", "items", "audio s", "WER %", "RTF", "peak GB"]
        lines += _table(head, rows)
    if report.get("identification"):
        lines += ["", "## Language identification (conversation)", ""]
        rows = [
            [r["lang"], r["mode"], str(r["items"]), str(r["right"]), _cell(100 * r["accuracy"])]
            for r in report["identification"]
        ]
        lines += _table(["spoken", "mode", "items", "identified right", "%"], rows)
    pairs: dict[tuple[str, str, str], list[dict]] = {}
    for r in report["translation"]:
        pairs.setdefault((r["kind"], r["source"], r["target"]), []).append(r)
    for (kind, source, target), rows_ in pairs.items():
        unit = rows_[0]["unit"]
        first = "first word s" if kind == "speech" else "first word (words)"
        lines += ["", f"## Translation, {kind} {source}→{target} (AL, LAAL in {unit})", ""]
        head = ["setting", "mode", "items", "BLEU", "chrF", f"AL {unit}", f"LAAL {unit}", first]
        head += ["RTF" if kind == "speech" else "compute s/item", "peak GB", "empty"]
        drafted = any(r.get("draft_acceptance") is not None for r in rows_)
        head += ["draft acceptance"] if drafted else []
        table = []
        for r in rows_:
            digits = 0 if unit == "ms" else 2
            cost = _cell(r["rtf"], 2) if kind == "speech" else _cell(r["compute_s_per_item"], 1)
            table.append(
                [
                    r["setting"],
                    r["mode"],
                    str(r["items"]),
                    _cell(r["bleu"]),
                    _cell(r["chrf"]),
                    _cell(r["al"], digits),
                    _cell(r["laal"], digits),
                    _cell(r["first_word"], 2),
                    cost,
                    _cell(r["peak_gb"], 2),
                    str(r["empty"]),
                ]
                + ([_cell(r.get("draft_acceptance"), 2)] if drafted else [])
            )
        lines += _table(head, table)
    for target, sig in report["signatures"].items():
        lines += ["", f"{target}: BLEU `{sig['bleu']}`; chrF `{sig['chrf']}`"]
    return "\n".join(lines) + "\n"
