"""``juno models``: list, import, fetch and resolve models."""

from __future__ import annotations

import argparse
from pathlib import Path

from juno.config import Config
from juno.errors import JunoError
from juno.models import devmodels, resolve, store


def configure_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="also list models in the Hugging Face cache")


def run_list(args: argparse.Namespace, cfg: Config) -> int:
    from rich.console import Console
    from rich.table import Table

    mdir = resolve.models_dir(cfg.models)
    models = store.list_models(mdir)
    if args.all:
        models += _hf_cache_models()
    if not models:
        print(f"no models in {mdir}: `juno models fetch` or `juno models import FILE`")
        return 0
    table = Table(title=f"models in {mdir}", title_justify="left")
    for column in ("name", "kind", "size", "detail"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for m in models:
        table.add_row(m.name, m.kind, store.human_size(m.size_bytes), m.detail)
    Console().print(table)
    return 0


def _hf_cache_models() -> list[store.LocalModel]:
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # no cache yet
        return []
    found = []
    for repo in repos:
        for revision in repo.revisions:
            model = store.describe(Path(revision.snapshot_path), repo.repo_id)
            if model.kind != "unknown":
                found.append(model)
    return found


def configure_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, help="a .gguf file or a CTranslate2 Whisper folder")
    p.add_argument("--name", help="folder name in the models folder (default: from the source)")
    p.add_argument("--force", action="store_true", help="replace an existing model of that name")


def run_import(args: argparse.Namespace, cfg: Config) -> int:
    src: Path = args.source.expanduser()
    if not src.exists():
        raise JunoError(f"{src}: no such file or folder")
    name = args.name or (src.stem if src.is_file() else src.name).lower()
    dest = resolve.models_dir(cfg.models) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    out = resolve.import_path(src, dest, overwrite=args.force)
    model = store.describe(out)
    print(f"imported {src} → {out} ({model.kind}, {store.human_size(model.size_bytes)})")
    return 0


def configure_fetch(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"which to fetch (default: all of {', '.join(devmodels.DEV_MODELS)})",
    )
    p.add_argument("--force", action="store_true", help="import again even if present")


def run_fetch(args: argparse.Namespace, cfg: Config) -> int:
    mdir = resolve.models_dir(cfg.models)
    downloads = resolve.downloads_dir(cfg.models)
    for path in devmodels.fetch(args.names, mdir, downloads, args.force):
        model = store.describe(path)
        print(f"{model.name}: {path} ({model.kind}, {store.human_size(model.size_bytes)})")
    return 0


def configure_resolve(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a model spec: path, imported name or Hub repo id")
    p.add_argument("--role", choices=("llm", "whisper"), default="llm")


def run_resolve(args: argparse.Namespace, cfg: Config) -> int:
    print(resolve.resolve(args.spec, args.role, cfg.models))
    return 0
