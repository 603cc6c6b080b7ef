"""Report charts as PNG bytes (matplotlib, Agg canvas, the CJK font).

No pyplot: figures are built with :class:`matplotlib.figure.Figure` directly,
so charts can be drawn from any thread (the scheduler's, Streamlit's) without
touching a global backend or state. Labels use the Simplified Chinese face
of the bundled font (:func:`reports.fonts.cjk_face`), registered once with
matplotlib's font manager. Same data → same bytes (fixed size, DPI and
metadata).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence

from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reports.fonts import cjk_face
from reports.model import HourPoint, Share

DPI = 110
_COLORS = {"total": "#4C78A8", "negative": "#E45756", "bar": "#72B7B2"}
_lock = threading.Lock()
_registered: set[str] = set()


def _family() -> str:
    """The CJK family name, registered with matplotlib's font manager on first use."""
    face = cjk_face()
    with _lock:
        if str(face.path) not in _registered:
            # addfont registers every face of a collection under its own family name.
            font_manager.fontManager.addfont(str(face.path))
            _registered.add(str(face.path))
    return face.family


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    return fig


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    # Fixed metadata: the PNG does not change between runs of the same version.
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _style(fig: Figure) -> None:
    family = _family()
    for text in fig.findobj(match=lambda artist: hasattr(artist, "set_fontfamily")):
        text.set_fontfamily(family)  # type: ignore[attr-defined]


def volume_chart(points: Sequence[HourPoint], *, title: str) -> bytes:
    """Bars of posts per hour with the negative share (%) as a line on a second axis."""
    fig = _figure(8.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(points)))
    ax.bar(xs, [p.total for p in points], color=_COLORS["total"], label="帖子数")
    ax.set_ylabel("帖子数")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, len(points) // 12)
    ax.set_xticks(xs[::step], [p.label for p in points][::step], rotation=0, fontsize=7)
    share_ax = ax.twinx()
    shares = [
        p.negative_share * 100 if p.negative_share is not None else float("nan") for p in points
    ]
    share_ax.plot(
        xs, shares, color=_COLORS["negative"], marker="o", markersize=2.5, label="负面占比"
    )
    share_ax.set_ylim(0, 105)
    share_ax.set_ylabel("负面占比 (%)")
    ax.set_title(title)
    handles = ax.get_legend_handles_labels()
    more = share_ax.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    ax.spines["top"].set_visible(False)
    _style(fig)
    fig.tight_layout()
    return _png(fig)


def mix_chart(left: Sequence[Share], right: Sequence[Share], *, titles: tuple[str, str]) -> bytes:
    """Two horizontal bar charts side by side (e.g. sentiment mix and topic mix)."""
    fig = _figure(8.0, 3.4)
    for index, (items, title) in enumerate(((left, titles[0]), (right, titles[1])), start=1):
        ax = fig.add_subplot(1, 2, index)
        rows = list(items)[:10][::-1]  # largest on top
        ax.barh([s.label for s in rows], [s.count for s in rows], color=_COLORS["bar"])
        for y, s in enumerate(rows):
            ax.text(s.count, y, f" {s.count}", va="center", fontsize=7)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="y", labelsize=8)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        if not rows:
            ax.text(0.5, 0.5, "无数据", ha="center", va="center", transform=ax.transAxes)
    _style(fig)
    fig.tight_layout()
    return _png(fig)
