"""Pictures of a search: the Pareto front of a run as PNG and as a self-contained HTML page.

PSNR against Mult-Adds (log axis, 1280x720 convention), every complete trial drawn with a marker
whose area follows its parameter count, the three-objective front in red with the two-objective
(PSNR, Mult-Adds) front as a staircase, and the
published baselines and paper presets (their Mult-Adds at the run's scale, counted by this project)
as labelled vertical reference lines: their published PSNR is on a benchmark set, not on the run's
validation images, so only their cost is drawn. Samples estimated on shared supernet weights are
drawn hollow.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import optuna

from ..runtime import atomic_write_bytes
from ..study.front import pareto_front

__all__ = ["plot_run", "reference_costs"]


def reference_costs(scale: int) -> dict[str, int]:
    """Mult-Adds at 1280x720 of the published baselines and paper presets available at ``scale``."""
    from ..evaluation.cost import measure
    from ..spaces.published import resolve_model
    from ..spaces.published import presets

    names = ["srcnn", "fsrcnn", "vdsr", "carn_m", "carn"]
    names += [name for name, preset in presets().items() if scale in preset.scales]
    out = {}
    for name in names:
        resolved = resolve_model(name, scale)
        out[name] = measure(resolved.model, resolved.scale).multadds
    return out


def plot_run(study: optuna.Study, stem: str | Path, *, scale: int, title: str = "",
             references: bool = True) -> tuple[Path, Path]:
    """Write ``<stem>.png`` and ``<stem>.html``; returns both paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    from matplotlib import pyplot as plt

    trials = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.values is not None]
    front = pareto_front(study)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    if trials:
        largest = max(t.values[1] for t in trials) or 1
        for shared in (False, True):
            group = [t for t in trials if (t.user_attrs.get("source") == "shared_weights") == shared]
            if not group:
                continue
            ax.scatter([t.values[2] / 1e9 for t in group], [t.values[0] for t in group],
                       s=[20 + 280 * t.values[1] / largest for t in group], alpha=0.6,
                       facecolors="none" if shared else "tab:blue", edgecolors="tab:blue",
                       label="shared-weight estimates" if shared else "trials (area ~ params)")
    if front:
        # The staircase is the two-objective front drawn here (PSNR vs Mult-Adds); red dots are the
        # three-objective front, which also keeps models that win on parameters alone.
        staircase, best = [], float("-inf")
        for entry in sorted(front, key=lambda e: (e["multadds"], -e["psnr"])):
            if entry["psnr"] > best:
                staircase.append(entry)
                best = entry["psnr"]
        ax.step([e["multadds"] / 1e9 for e in staircase], [e["psnr"] for e in staircase], where="post",
                color="tab:red", label="front: PSNR vs Mult-Adds")
        ax.scatter([e["multadds"] / 1e9 for e in front], [e["psnr"] for e in front], color="tab:red", s=18, zorder=3,
                   label="front: PSNR, params, Mult-Adds")
    if references:
        for name, multadds in reference_costs(scale).items():
            ax.axvline(multadds / 1e9, color="grey", linestyle=":", linewidth=0.8)
            ax.text(multadds / 1e9, 1.0, f" {name}", rotation=90, va="top", ha="left", fontsize=7,
                    transform=ax.get_xaxis_transform(), color="dimgrey")
    ax.set_xscale("log")
    ax.set_xlabel(f"Mult-Adds (G) for a 1280x720 output, x{scale}")
    ax.set_ylabel("PSNR (dB, Y channel, validation)")
    ax.set_title(title or "Pareto front")
    ax.grid(True, which="both", alpha=0.3)
    if trials or front:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    stem = Path(stem)
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg")
    plt.close(fig)
    png_path = atomic_write_bytes(stem.with_suffix(".png"), png.getvalue())
    html_path = atomic_write_bytes(stem.with_suffix(".html"), _page(title, svg.getvalue(), front).encode())
    return png_path, html_path


def _page(title: str, svg: bytes, front: list[dict]) -> str:
    def row(entry: dict) -> str:
        ssim = "" if entry["ssim"] is None else f"{entry['ssim']:.4f}"
        cells = [str(entry["trial"]), f"{entry['psnr']:.3f}", ssim, f"{entry['params']:,}",
                 f"{entry['multadds'] / 1e9:.3f}G", html.escape(entry["source"]),
                 f"<code>{html.escape(str(entry['architecture']))}</code>"]
        return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"

    rows = "\n".join(row(entry) for entry in front)
    image = base64.b64encode(svg).decode()
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 6px;font-size:13px}}code{{font-size:11px}}</style></head>
<body><h1>{html.escape(title)}</h1>
<img alt="Pareto front" src="data:image/svg+xml;base64,{image}">
<h2>Pareto front</h2>
<table><tr><th>trial</th><th>PSNR</th><th>SSIM</th><th>params</th><th>Mult-Adds</th><th>source</th>
<th>architecture</th></tr>
{rows}
</table></body></html>
"""
