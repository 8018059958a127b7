"""``juno eval MANIFEST``: live translation measured on a manifest, beside its offline ceiling.

Every item runs through the streaming cores on a simulated clock (see
juno.eval.run) for each wait-k value, and through the offline cascade. The
output folder (default ``eval-results/<timestamp>/``) receives ``items.jsonl``,
one record per item as soon as it is done, then ``report.json`` (every figure
and the exact configuration), ``report.md`` and ``quality-latency.png``.
Ctrl-C stops the run and reports the items finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

from juno.config import Config, add_flag, to_dict
from juno.errors import JunoError

OUT_ROOT = Path("eval-results")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="manifest file, .jsonl or .json (see README)")
    p.add_argument("--wait-k", help="comma list of k, e.g. 1,3,5 (default: translate.wait_k)")
    add_flag(
        p,
        "--phi",
        key="translate.phi",
        help="target start position: an integer, 'source' or 'source+N' (translate.phi)",
    )
    p.add_argument(
        "--target", help="comma list of target languages (default: all the references have)"
    )
    add_flag(
        p,
        "--pair",
        key="conversation.pair",
        help="a two-way conversation, e.g. en,fr: each item's language identified among the "
        "two, its words translated into the other (conversation.pair)",
    )
    p.add_argument("--modes", default="unaware,aware", help="speech replay modes (comma list)")
    p.add_argument("--limit", type=int, default=0, help="only the first N items")
    p.add_argument("--chunk-ms", type=int, default=100, help="audio fed per replay tick")
    p.add_argument("--no-offline", action="store_true", help="skip the offline cascade")
    p.add_argument(
        "--batch",
        action="store_true",
        help="also translate each item's target languages at once, as one batch "
        "(rows 'wait-k batched'; their compute is the whole batch's)",
    )
    add_flag(p, "--whisper", key="transcribe.model", help="Whisper spec (transcribe.model)")
    add_flag(p, "--llm", key="translate.model", help="LLM spec (translate.model)")
    p.add_argument("--out", type=Path, help="output folder (default: eval-results/<timestamp>)")


def _list(value: str, option: str) -> list[str]:
    parts = [v.strip() for v in value.split(",") if v.strip()]
    if not parts:
        raise JunoError(f"{option}: expected a comma list, got {value!r}")
    return parts


def _settings(args: argparse.Namespace, cfg: Config):
    from juno.eval.run import MODES, Settings
    from juno.languages import language_name
    from juno.simul.options import TranslateOptions

    ks = [cfg.translate.wait_k]
    if args.wait_k is not None:
        try:
            ks = [int(k) for k in _list(args.wait_k, "--wait-k")]
        except ValueError:
            raise JunoError(
                f"--wait-k: expected integers like 1,3,5, got {args.wait_k!r}"
            ) from None
    base = TranslateOptions.from_config(cfg, cfg.target_languages[0])
    for k in ks:
        replace(base, wait_k=k)  # each k meets the options' checks now, not mid-run
    modes = _list(args.modes, "--modes")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise JunoError(f"--modes: unknown {', '.join(unknown)} (choose from {', '.join(MODES)})")
    targets = None
    if args.target:
        targets = tuple(_list(args.target, "--target"))
        for code in targets:
            language_name(code)
    if args.chunk_ms <= 0:
        raise JunoError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    if args.limit < 0:
        raise JunoError(f"--limit must not be negative, got {args.limit}")
    return Settings(
        ks=tuple(dict.fromkeys(ks)),
        targets=targets,
        modes=tuple(m for m in MODES if m in modes),
        chunk_s=args.chunk_ms / 1000,
        offline=not args.no_offline,
        batch=args.batch,
    )


def _out_dir(path: Path | None) -> Path:
    if path is None:
        base = OUT_ROOT / time.strftime("%Y%m%d-%H%M%S")
        path, n = base, 2
        while path.exists():
            path, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JunoError(f"cannot create output folder {path}: {e.strerror}") from None
    return path


def _run_info(args, cfg: Config, settings, evaluator, items, machine: dict, started: float) -> dict:
    from juno.eval import provenance
    from juno.simul.options import TranslateOptions

    models = {}
    if evaluator.whisper_path is not None:
        models["whisper"] = {"spec": cfg.transcribe.model, "name": evaluator.whisper_path.name}
    if evaluator.llm_path is not None:
        models["llm"] = {
            "spec": cfg.translate.model,
            "name": evaluator.llm_path.name,
            "adapter": cfg.translate.adapter or None,
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_s": time.time() - started,
        "manifest": {
            "path": str(args.manifest),
            "sha256": hashlib.sha256(args.manifest.read_bytes()).hexdigest(),
            "items": len(items),
        },
        "models": models,
        "settings": {
            "wait_k": list(settings.ks),
            "phi": TranslateOptions.from_config(cfg, cfg.target_languages[0]).phi,
            "targets": list(settings.targets) if settings.targets else "all with references",
            "modes": list(settings.modes),
            "chunk_ms": args.chunk_ms,
            "offline": settings.offline,
        },
        "config": to_dict(cfg),
        "juno_commit": provenance.git_commit(),
        "packages": provenance.package_versions(),
        "machine": machine,
        # ru_maxrss is in KiB on Linux, bytes on macOS.
        "peak_rss_gb": rss * (1 if sys.platform == "darwin" else 1024) / 1e9,
    }


def run(args: argparse.Namespace, cfg: Config) -> int:
    from tqdm import tqdm

    from juno.eval import provenance
    from juno.eval import report as report_mod
    from juno.eval.manifest import load_manifest
    from juno.eval.plot import plot
    from juno.eval.run import Evaluator

    settings = _settings(args, cfg)
    items = load_manifest(args.manifest)
    items = items[: args.limit] if args.limit else items
    started = time.time()
    machine = provenance.machine()  # the load average before this run adds its own
    evaluator = Evaluator(cfg, settings)
    evaluator.load(items)
    out = _out_dir(args.out)

    records: list[dict] = []
    interrupted = False
    with (out / "items.jsonl").open("w", encoding="utf-8") as f:
        bar = tqdm(total=len(items), unit="item", desc="eval", dynamic_ncols=True)
        try:
            for item in items:
                record = evaluator.run_item(
                    item, lambda stage, name=item.id: bar.set_postfix_str(f"{name}: {stage}")
                )
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
                records.append(record)
                bar.update()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()

    info = _run_info(args, cfg, settings, evaluator, items, machine, started)
    report = report_mod.build(records, info, len(items), interrupted)
    report_mod.write_json(report, out / "report.json")
    text = report_mod.markdown(report)
    (out / "report.md").write_text(text, encoding="utf-8")
    plotted = plot(report["translation"], out / "quality-latency.png")
    print(text)
    written = ["items.jsonl", "report.json", "report.md"] + (
        ["quality-latency.png"] if plotted else []
    )
    print(f"wrote {', '.join(written)} in {out}")
    if interrupted:
        raise KeyboardInterrupt
    return 0
