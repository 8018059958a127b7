"""``juno bench backend``: MLX speed with and without OpenBLAS, side by side.

OpenBLAS can only be loaded before MLX, so each variant runs in its own child
process (``JUNO_BLAS=0`` keeps the bundled BLAS); the children run one after
the other and the parent prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from juno.config import Config

DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_LLM, help="LLM for the forward test (a model spec)")
    p.add_argument("--size", type=int, default=1024, help="square matmul size")
    p.add_argument("--prompt-tokens", type=int, default=64, help="tokens in the forward pass")
    p.add_argument("--decode-tokens", type=int, default=8, help="single-token steps timed")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def _time(fn, repeat: int) -> float:
    fn()  # warm up (kernel selection, allocation)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def _measure(args: argparse.Namespace, cfg: Config) -> dict:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.cache import make_prompt_cache

    from juno import backend
    from juno.models.loading import load_llm

    out: dict = {"backend": backend.describe()}
    n = args.size
    for dtype in ("float32", "float16"):
        a = mx.random.normal((n, n)).astype(getattr(mx, dtype))
        mx.eval(a)
        seconds = _time(lambda a=a: mx.eval(a @ a), 3)
        out[f"matmul_{dtype}_gflops"] = 2 * n**3 / seconds / 1e9

    model, _, path = load_llm(args.model, cfg)
    dtype = tree_flatten(model.parameters())[0][1].dtype
    out["model"] = f"{path.name}, {dtype}"
    prompt = mx.array([list(range(100, 100 + args.prompt_tokens))])

    def forward():
        mx.eval(model(prompt))

    seconds = _time(forward, 1)
    out["prefill_tokens_per_s"] = args.prompt_tokens / seconds

    cache = make_prompt_cache(model)
    mx.eval(model(prompt, cache=cache))
    token = mx.array([[100]])
    start = time.perf_counter()
    for _ in range(args.decode_tokens):
        mx.eval(model(token, cache=cache))
    out["decode_tokens_per_s"] = args.decode_tokens / (time.perf_counter() - start)
    return out


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "juno.cli", "bench", "backend", "--child"]
    argv += ["--model", args.model, "--size", str(args.size)]
    argv += ["--prompt-tokens", str(args.prompt_tokens)]
    argv += ["--decode-tokens", str(args.decode_tokens)]
    if args.config:
        argv += ["--config", args.config]
    for item in args.set:
        argv += ["--set", item]
    return argv


def run(args: argparse.Namespace, cfg: Config) -> int:
    if args.child:
        print(json.dumps(_measure(args, cfg)))
        return 0
    from rich.console import Console
    from rich.table import Table

    results = {}
    for label, blas in (("OpenBLAS", "1"), ("bundled BLAS", "0")):
        env = dict(os.environ, JUNO_BLAS=blas)
        print(f"measuring with {label}…", file=sys.stderr)
        proc = subprocess.run(_child_argv(args), env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])

    fast, slow = results["OpenBLAS"], results["bundled BLAS"]
    table = Table(title="MLX on this machine: OpenBLAS vs MLX's bundled BLAS", title_justify="left")
    for column in ("measure", "OpenBLAS", "bundled BLAS", "speed-up"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    rows = [
        (f"matmul {args.size}² float32 (GFLOPS)", "matmul_float32_gflops"),
        (f"matmul {args.size}² float16 (GFLOPS)", "matmul_float16_gflops"),
        (f"forward, {args.prompt_tokens}-token prompt (tokens/s)", "prefill_tokens_per_s"),
        ("decode, one token at a time (tokens/s)", "decode_tokens_per_s"),
    ]
    for label, key in rows:
        ratio = fast[key] / slow[key]
        table.add_row(label, f"{fast[key]:.1f}", f"{slow[key]:.1f}", f"{ratio:.1f}×")
    console = Console()
    console.print(table)
    console.print(f"model: {fast['model']}")
    console.print(f"with: {fast['backend']}\nwithout: {slow['backend']}")
    return 0
