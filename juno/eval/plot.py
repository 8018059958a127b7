"""The quality-latency plot: BLEU against LAAL, one point per k, the offline BLEU as a line."""

from __future__ import annotations

from pathlib import Path

MODE_STYLE = {"unaware": ("o", "-"), "aware": ("s", "--")}


def plot(rows: list[dict], path: Path) -> bool:
    """One panel per kind and language pair; False (nothing written) without streaming rows."""
    from matplotlib.figure import Figure  # Agg canvas: no display needed

    panels: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        panels.setdefault((r["kind"], r["source"], r["target"]), []).append(r)
    panels = {
        key: rs
        for key, rs in panels.items()
        if any(r["setting"] != "offline" and r["laal"] is not None for r in rs)
    }
    if not panels:
        return False
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = Figure(figsize=(5.2 * cols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, ((kind, source, target), rs) in zip(axes, panels.items(), strict=False):
        for mode, (marker, line) in MODE_STYLE.items():
            points = sorted(
                (r["k"], r["laal"], r["bleu"])
                for r in rs
                if r["setting"] != "offline" and r["mode"] == mode and r["laal"] is not None
            )
            if not points:
                continue
            xs, ys = [p[1] for p in points], [p[2] for p in points]
            ax.plot(xs, ys, marker=marker, linestyle=line, label=f"wait-k, {mode}")
            for k, x, y in points:
                ax.annotate(f"k={k}", (x, y), textcoords="offset points", xytext=(4, 4))
        offline = [r["bleu"] for r in rs if r["setting"] == "offline"]
        if offline:
            ax.axhline(offline[0], color="grey", linestyle=":", label=f"offline {offline[0]:.1f}")
        unit = "ms of audio" if rs[0]["unit"] == "ms" else "source words"
        ax.set_title(f"{kind} {source}→{target}")
        ax.set_xlabel(f"LAAL ({unit})")
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=100)
    return True
