"""Assemble a self-contained HTML page from sections of text, tables and matplotlib figures.

Every figure goes through `style` (fonts of at least 11 pt, legends beside the axes rather than on the data,
titles wrapped to their axes) and is also written as a PNG and an SVG next to the page (`figures/*.png`, `*.svg`).
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402

from monosemantic.errors import InputError  # noqa: E402
from monosemantic.runs import atomic_file, write_text  # noqa: E402

_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 16px; line-height: 1.45; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; white-space: normal; max-width: 9em; overflow-wrap: break-word; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; } .note { color: #555; font-size: 0.95em; }
.picture { font-size: 1.02em; } .picture td { text-align: left; }
"""

MIN_FONT = 11  # points: the smallest text a figure may carry
DPI = 100
PAGE_WIDTH = 11.5  # inches at DPI: the page's 1150 px, beyond which a figure is shown smaller than drawn

# column key -> header a reader understands (keys not listed: underscores become spaces)
HEADERS = {
    "mmcs": "MMCS (mean best cosine)", "recovered": "recovered@0.9", "mcc_hungarian": "Hungarian MCC",
    "fvu": "FVU", "l0": "L0", "dead": "dead latents", "support_f1": "support F1", "code_rel_err": "code error (relative)",
    "train_s": "training s", "wall_s": "compute s", "samples_per_s": "samples/s", "objective": "objective",
    "unconverged": "unconverged samples", "loss": "loss", "represented_features": "features represented",
    "dims_per_feature": "dims per feature D*", "monosemantic_neurons": "monosemantic neurons",
    "used_neurons": "used neurons", "importance_threshold": "importance threshold",
    "correlation_true_supports": "correlation (true supports)", "high_cos_no_shared": "cos > 0.8, no shared feature",
    "low_cos_mostly_shared": "cos < 0.3, mostly shared", "unfold_support_f1": "unfolded support F1",
}


def header(key: str) -> str:
    return HEADERS.get(key, key.replace("_", " "))


def _wrap_title(ax) -> None:
    title = ax.get_title()
    if not title:
        return
    size = ax.title.get_fontsize()
    width_pt = ax.get_position().width * ax.figure.get_figwidth() * 72
    chars = max(12, int(width_pt / (0.55 * size)))
    ax.set_title("\n".join(textwrap.wrap(title.replace("\n", " "), chars)), fontsize=size)


def _legend_beside(ax) -> bool:
    leg = ax.get_legend()
    if leg is None:
        return False
    handles, labels = leg.legend_handles, [t.get_text() for t in leg.get_texts()]
    title = leg.get_title().get_text()
    ax.legend(handles, labels, title=title or None, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
              frameon=False, fontsize=MIN_FONT)
    return True


def _clear_twins(fig) -> None:
    """Move a legend beside an axes with a twin (twinx) past the twin's tick labels and label."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        leg = ax.get_legend()
        twins = [o for o in fig.axes if o is not ax and o.bbox.bounds == ax.bbox.bounds]
        if leg is None or not twins or ax.bbox.width <= 0:
            continue
        # in points past the axes, which the layout keeps; 16 more for the twin's tick labels, which it may widen
        past = max(t.get_tightbbox(renderer).x1 for t in twins) - ax.bbox.x1
        shift = matplotlib.transforms.offset_copy(ax.transAxes, fig=fig, x=past * 72 / fig.dpi + 16, units="points")
        leg.set_bbox_to_anchor((1, 1), transform=shift)


def _widen_for_legends(fig) -> None:
    """Make the figure wider by the legends now beside its axes (the widest row of them), up to the page's width,
    so that the axes keep the width the figure was drawn for instead of being squeezed."""
    renderer = fig.canvas.get_renderer()
    rows: dict[float, float] = {}
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            row = round(ax.get_position().y0, 2)
            rows[row] = rows.get(row, 0.0) + leg.get_window_extent(renderer).width / fig.dpi + 0.1
    if rows:  # never past the page's width: a wider figure is shrunk on the page, and its text with it
        width = fig.get_figwidth()
        fig.set_figwidth(min(width + max(rows.values()), max(width, PAGE_WIDTH)))


def _tick_label(v: float, _pos=None) -> str:
    return f"{v:g}"


def _one_two_five(v: float, _pos=None) -> str:
    return f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v)), 6) in (2, 5) else ""


def _plain_log_labels(ax) -> None:
    """Log axes labelled 0.01, 0.02, 0.05, 0.1 where there is room (decades only where there is not) instead of
    matplotlib's 3x10^-3, 4x10^-3, ..., which run into each other at the report's font size."""
    fig, box = ax.figure, ax.get_position()
    for axis, lim, inches, room in ((ax.xaxis, ax.get_xlim(), box.width * fig.get_figwidth(), 2.0),
                                    (ax.yaxis, ax.get_ylim(), box.height * fig.get_figheight(), 0.9)):
        lo, hi = sorted(lim)
        if axis.get_scale() != "log" or lo <= 0:
            continue
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
        # 1, 2, 5 sit 0.3 to 0.4 decades apart: labels like "0.005" need about 2 inches a decade across, 0.9 up
        crowded = inches / max(math.log10(hi / lo), 1e-9) < room
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter() if crowded
                                 else matplotlib.ticker.FuncFormatter(_one_two_five))


def style(fig):
    """The report's look on any figure, in place: no text under MIN_FONT points, legends moved beside their
    axes (never over the data), titles wrapped to their axes' width, log axes labelled in plain numbers, a layout that
    keeps it all in the frame."""
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_fontsize() < MIN_FONT:
            text.set_fontsize(MIN_FONT)
    for ax in fig.axes:
        _wrap_title(ax)  # to the width the figure was drawn for, which _widen_for_legends keeps for the axes
        _plain_log_labels(ax)
    moved = [_legend_beside(ax) for ax in fig.axes]
    try:
        fig.set_layout_engine("constrained")
    except RuntimeError:  # a figure whose layout engine cannot change keeps its own
        pass
    if any(moved):
        _widen_for_legends(fig)
        _clear_twins(fig)
    return fig


def render(fig, formats: tuple[str, ...] = ("png", "svg")) -> dict[str, bytes]:
    """The styled figure in each format (png at DPI, svg as vectors); closes the figure."""
    style(fig)
    out = {}
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight")
        out[fmt] = buf.getvalue()
    plt.close(fig)
    return out


def png_bytes(fig) -> bytes:
    """The styled figure as PNG bytes; closes the figure."""
    return render(fig, ("png",))["png"]


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure styled like the report's, atomically, as PNG or SVG by the path's suffix (.png, .svg);
    closes the figure."""
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in ("png", "svg"):
        raise InputError(f"a figure is saved as .png or .svg, not {Path(path).name}")
    data = render(fig, (fmt,))[fmt]
    return atomic_file(path, lambda p: p.write_bytes(data))


def styled(draw):
    """`draw` (result -> figure) with the report's style applied: for the PNGs commands write into run directories."""
    def draw_styled(*args, **kw):
        return style(draw(*args, **kw))
    return draw_styled


@dataclass
class Section:
    title: str
    parts: list[str] = field(default_factory=list)  # HTML fragments, in order
    files: dict[str, str] = field(default_factory=dict)  # pages the section links to: name -> HTML, written beside

    def text(self, s: str, note: bool = False) -> Section:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(s)}</p>")
        return self

    def add(self, fragment: str) -> Section:
        self.parts.append(fragment)
        return self


class Figure(str):
    """A figure in a section: the <img> HTML (the PNG inline, base64) that also carries its PNG and SVG bytes, which
    `write_report` writes into figures/."""

    png: bytes
    svg: bytes


def figure(fig, alt: str = "") -> Figure:
    """An <img> with the styled figure embedded as a base64 PNG (and its SVG kept for figures/); closes the figure."""
    files = render(fig)
    data = base64.b64encode(files["png"]).decode()
    out = Figure(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
    out.png, out.svg = files["png"], files["svg"]
    return out


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(header(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


_IMG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _slug(title: str, words: int = 4) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", title.lower())[:words]) or "section"


def write_figures(folder: str | Path, sections: list[Section]) -> list[Path]:
    """Every figure of the sections as `folder/NN-section-K.png` and `.svg` (NN: section order, K: figure order).
    A figure inside a larger HTML fragment (no longer a `Figure`) is found by its inline PNG and written as PNG only."""
    paths = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    for i, sec in enumerate(sections):
        k = 0
        for part in sec.parts:
            found = [part] if isinstance(part, Figure) else [base64.b64decode(m) for m in _IMG.findall(part)]
            for fig in found:
                k += 1
                stem = Path(folder) / f"{i:02d}-{_slug(sec.title)}-{k}"
                files = {"png": fig.png, "svg": fig.svg} if isinstance(fig, Figure) else {"png": fig}
                for fmt, data in files.items():
                    paths.append(atomic_file(stem.with_suffix(f".{fmt}"), lambda p, d=data: p.write_bytes(d)))
    return paths


def write_report(path: str | Path, title: str, sections: list[Section], intro: str = "", lead: str = "") -> Path:
    """The page (self-contained: figures inline), every figure as a PNG and an SVG in `figures/` beside it, and the
    pages the sections link to (`Section.files`) beside it.
    `lead`: an HTML fragment shown before the table of contents."""
    path = Path(path)
    toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{html.escape(s.title)}</h2>' + "".join(s.parts) for i, s in enumerate(sections))
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"
            f"{lead}<ul>{toc}</ul>{body}</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figures(path.parent / "figures", sections)
    for name, text in (f for s in sections for f in s.files.items()):
        write_text(path.parent / name, text)
    return write_text(path, page)
