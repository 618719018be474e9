"""A PNG chart of an analysis: CTR per variant with its interval as error bars (delta method for
clicks / impressions per user, Wilson for a share of users or of impressions).

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so it needs no display, keeps
no global pyplot state, and is safe in worker threads.
"""

from __future__ import annotations

import io
import textwrap

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backend.abtest.results import ExperimentAnalysis

CONTROL_COLOUR = "#1f4e79"
TREATMENT_COLOUR = "#9dbcd8"


def render_ctr_chart(analysis: ExperimentAnalysis, *, dpi: int = 100) -> bytes:
    """PNG bytes: one bar per variant (CTR in %), interval error bars, control in a
    darker colour, and the verdict as the title. Variants without impressions get an empty bar
    labelled "no data"."""
    names = [v.variant for v in analysis.variants]
    ctrs = [100.0 * (v.ctr or 0.0) for v in analysis.variants]
    lower, upper = [], []
    for v, ctr in zip(analysis.variants, ctrs, strict=True):
        ci = v.ctr_ci
        has_ci = ci.low is not None and ci.high is not None
        lower.append(ctr - 100.0 * ci.low if has_ci and ci.low is not None else 0.0)
        upper.append(100.0 * ci.high - ctr if has_ci and ci.high is not None else 0.0)
    colours = [CONTROL_COLOUR if v.is_control else TREATMENT_COLOUR for v in analysis.variants]

    figure = Figure(figsize=(max(4.0, 1.4 * len(names) + 2.0), 4.5), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(names, ctrs, color=colours, edgecolor="black", linewidth=0.6)
    axes.errorbar(names, ctrs, yerr=[lower, upper], fmt="none", ecolor="black", capsize=6)
    for index, v in enumerate(analysis.variants):
        label = "no data" if v.ctr is None else f"{100.0 * v.ctr:.2f}%"
        if v.is_control:
            label += "\n(control)"
        axes.annotate(
            label,
            (index, ctrs[index] + upper[index]),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    level = round(100 * (1 - analysis.settings.alpha), 4)
    method = analysis.variants[0].ctr_ci.method if analysis.variants else "wilson"
    interval = "Wilson" if method == "wilson" else "delta-method"
    axes.set_ylabel(f"CTR (%) with {level:g}% {interval} interval")
    if analysis.metric_variants:
        unit = "clicks / impressions, users as the unit"
    else:
        unit = "users who clicked" if analysis.unit == "user" else "per impression"
    axes.set_xlabel(f"variant ({unit})")
    top = max((c + u for c, u in zip(ctrs, upper, strict=True)), default=0.0)
    axes.set_ylim(0, top * 1.25 if top > 0 else 1.0)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title("\n".join(textwrap.wrap(analysis.verdict, 70)), fontsize=9, loc="left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
