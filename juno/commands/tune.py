"""``juno tune``: streaming-aware LoRA fine-tuning of the translation LLM.

Trains on FLORES dev pairs laid out as the engine streams them (see
:mod:`juno.simul.finetune`). By default the pairs come from line 100 on: the
benchmark scores the first lines (``juno bench translate --sentences N`` with
N <= 100), so training never sees them. Prints what the run cost; the adapter
folder it writes is used with ``--set translate.adapter=FOLDER``.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import replace
from pathlib import Path

from juno.config import Config, add_flag
from juno.errors import JunoError

# The benchmark scores at most this many leading FLORES dev lines.
EVAL_LINES = 100
# Without a terminal (a log file), a line every this many steps instead of the bar.
LOG_EVERY = 25


def configure(p: argparse.ArgumentParser) -> None:
    add_flag(p, "--model", key="translate.model", help="LLM spec (translate.model)")
    p.add_argument("--out", type=Path, required=True, help="adapter folder to write")
    p.add_argument("--pairs", default="en-fr,en-de", help="language pairs, comma-separated")
    p.add_argument(
        "--lines",
        default=f"{EVAL_LINES}:",
        help="FLORES dev lines to train on, START:END (default: after the benchmark's)",
    )
    p.add_argument("--held-out", type=int, default=8, help="pairs per language kept for the loss")
    p.add_argument("--steps", type=int, default=400, help="training steps (one pair each)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0: none)")
    p.add_argument("--ks", default="2,3,4,5,6", help="wait-k values drawn per pair")
    p.add_argument(
        "--targets",
        choices=("reference", "model"),
        default="reference",
        help="train on the FLORES reference translations, or on the model's own offline "
        "translations of the same sources (self-distillation; they are saved in OUT)",
    )
    p.add_argument(
        "--teacher-examples",
        help="example turns in the prompt that makes --targets model: N, or per pair "
        "(en-fr=0,en-de=2); default translate.examples. More than the student's distils "
        "the few-shot prompt into the adapter",
    )
    p.add_argument(
        "--offline-share",
        type=float,
        default=0.0,
        help="share of steps trained in the offline layout (whole sentence), 0..1: keeps "
        "the adapter's offline translation",
    )
    p.add_argument("--seed", type=int, default=0)


def _line_range(text: str) -> slice:
    try:
        start, _, end = text.partition(":")
        return slice(int(start) if start else 0, int(end) if end else None)
    except ValueError:
        raise JunoError(f"--lines must be START:END, got {text!r}") from None


def _per_pair(text: str | None, pairs: list[str], default: int) -> dict[str, int]:
    """``--teacher-examples``: one count for every pair, or ``PAIR=N`` for each."""
    if text is None:
        return dict.fromkeys(pairs, default)
    try:
        if "=" not in text:
            counts = dict.fromkeys(pairs, int(text))
        else:
            counts = {p.strip(): int(n) for p, _, n in (x.partition("=") for x in text.split(","))}
    except ValueError:
        raise JunoError(f"--teacher-examples must be N or PAIR=N,..., got {text!r}") from None
    if set(counts) != set(pairs) or min(counts.values()) < 0:
        raise JunoError(f"--teacher-examples needs a count >= 0 for each of {', '.join(pairs)}")
    return counts


def _teacher(model, tokenizer, cfg: Config, sources, source: str, target: str, out: Path, console):
    """The model's own offline translations of ``sources`` (no adapter yet), saved in ``out``.

    The prompt is ``cfg``'s (its ``translate.examples`` example turns).
    """
    import json
    import time

    from rich.progress import Progress

    from juno.simul.offline import translate_offline_batch

    examples = cfg.translate.examples
    saved = out / f"targets-{source}-{target}.jsonl"
    if saved.is_file():  # an earlier run's, for the same sources and prompt: reuse them
        rows = [json.loads(line) for line in saved.read_text(encoding="utf-8").splitlines()]
        same = [(r["source"], r.get("examples")) for r in rows] == [(s, examples) for s in sources]
        if same:
            console.print(f"{source}-{target}: reusing the offline translations in {saved}")
            return [r["target"] for r in rows]
    start = time.perf_counter()
    with Progress(console=console) as progress:
        task = progress.add_task(f"translating {source}-{target} offline", total=len(sources))
        hyps = translate_offline_batch(
            model,
            tokenizer,
            cfg,
            list(sources),
            source,
            target,
            on_batch=lambda n: progress.advance(task, n),
        )
    seconds = time.perf_counter() - start
    console.print(
        f"{source}-{target}: {len(sources)} offline translations in {seconds:.0f} s "
        f"({seconds / max(1, len(sources)):.1f} s each)"
    )
    out.mkdir(parents=True, exist_ok=True)
    with open(saved, "w", encoding="utf-8") as f:
        for s, h in zip(sources, hyps, strict=True):
            row = {"source": s, "target": h, "examples": examples}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return hyps


def run(args: argparse.Namespace, cfg: Config) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from juno.models.loading import load_llm
    from juno.paths import flores_dev, flores_pairs
    from juno.simul.examples import examples_for
    from juno.simul.finetune import (
        TuneOptions,
        add_lora,
        make_example,
        make_offline_example,
        save_adapter,
        train,
    )
    from juno.simul.options import TranslateOptions
    from juno.simul.prompt import StreamPrompt

    console = Console()
    tc = cfg.translate
    lines = _line_range(args.lines)
    if (lines.start or 0) < EVAL_LINES:
        console.print(f"[yellow]warning: lines before {EVAL_LINES} are the benchmark's[/]")
    try:
        ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        raise JunoError(f"--ks must be integers, got {args.ks!r}") from None
    if not ks or min(ks) < 1 or args.steps < 1 or args.rank < 1 or args.held_out < 0:
        raise JunoError("--ks must be >= 1, --steps and --rank positive, --held-out >= 0")
    if not 0 <= args.offline_share <= 1:
        raise JunoError(f"--offline-share must be between 0 and 1, got {args.offline_share}")
    if args.teacher_examples is not None and args.targets != "model":
        raise JunoError("--teacher-examples is for --targets model")
    pairs = flores_pairs(args.pairs)
    teacher_examples = _per_pair(args.teacher_examples, [f"{s}-{t}" for s, t in pairs], tc.examples)
    translate_options = TranslateOptions.from_config(cfg)
    phi = translate_options.phi
    options = TuneOptions(
        steps=args.steps,
        learning_rate=args.lr,
        rank=args.rank,
        max_grad_norm=args.max_grad_norm,
        ks=ks,
        seed=args.seed,
        phi=str(phi),
        examples=tc.examples,
        offline_share=args.offline_share,
    )
    if tc.adapter:
        raise JunoError("translate.adapter is set: tune the base model (unset it)")
    spec = tc.model
    model, tokenizer, path = load_llm(spec, cfg)

    builders, held_out = [], []
    for source, target in pairs:
        system = replace(translate_options, source_language=source, target_language=target).system()
        prompt = StreamPrompt.from_template(
            tokenizer, system, examples_for(source, target, tc.examples)
        )
        # The end of the assistant turn the engine samples (ChatML: <|im_end|>).
        eos = tokenizer.eos_token_ids
        end = prompt.footer[0] if prompt.footer[:1] and prompt.footer[0] in eos else min(eos)
        src = flores_dev(source)[lines]
        if args.targets == "model":
            n_examples = teacher_examples[f"{source}-{target}"]
            teacher_cfg = replace(cfg, translate=replace(tc, examples=n_examples))
            ref = _teacher(model, tokenizer, teacher_cfg, src, source, target, args.out, console)
        else:
            ref = flores_dev(target)[lines]

        def builder(s: str, r: str, prompt=prompt, end=end):
            words = s.split()
            ids = tokenizer.encode(r, add_special_tokens=False)

            def build(k: int | None):
                if k is None:
                    return make_offline_example(tokenizer, prompt, words, ids, end)
                return make_example(tokenizer, prompt, words, ids, end, k, phi)

            return build

        # An empty or echoed (untranslated) target teaches nothing: skip it.
        examples = [builder(s, r) for s, r in zip(src, ref, strict=True) if r and r != s]
        held_out += [b(tc.wait_k) for b in examples[: args.held_out]]
        builders += examples[args.held_out :]
    console.print(
        f"tuning {Path(path).name}: {len(builders)} pairs ({args.pairs}, lines {args.lines}), "
        f"{len(held_out)} held out, {args.steps} steps, LoRA rank {args.rank}, k in {ks}, "
        f"phi {phi}, {tc.examples} example turns, {args.targets} targets"
        + (f" (teacher example turns {teacher_examples})" if args.targets == "model" else "")
        + (f", {args.offline_share:.0%} of steps offline" if args.offline_share else "")
    )
    lora = add_lora(model, options)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("training", total=args.steps, loss=float("nan"))

        def on_step(step: int, loss: float) -> None:
            progress.update(task, completed=step + 1, loss=loss)
            if not console.is_terminal and (step + 1) % LOG_EVERY == 0:
                console.print(f"step {step + 1}/{args.steps} loss {loss:.3f}")

        report = train(model, builders, held_out, options, on_step)
    info = {
        "base_model": spec,
        "base_model_folder": Path(path).name,
        "pairs": args.pairs,
        "lines": args.lines,
        "targets": args.targets,
        "teacher_examples": teacher_examples if args.targets == "model" else None,
        "seconds": round(report.seconds, 1),
        "seconds_per_step": round(report.seconds_per_step, 2),
        "tokens": report.tokens,
        "held_out_loss": [round(report.held_out_before, 4), round(report.held_out_after, 4)],
        "machine": f"{platform.machine()} {platform.system()}",
    }
    save_adapter(model, args.out, lora, options, info)
    console.print(
        f"trained {report.steps} steps in {report.seconds:.0f} s "
        f"({report.seconds_per_step:.2f} s/step, {report.tokens / report.seconds:.0f} tokens/s), "
        f"peak memory {report.peak_memory_gb:.1f} GB\n"
        f"training loss {report.first_loss:.3f} -> {report.last_loss:.3f} "
        f"(first and last tenth); held-out loss at wait-{tc.wait_k} "
        f"{report.held_out_before:.3f} -> {report.held_out_after:.3f}\n"
        f"adapter written to {args.out}; use it with --set translate.adapter={args.out}"
    )
    return 0
