"""The accuracy report as one self-contained HTML page: inline SVG plots, inline PNG crops.

``render_html(report, crops)`` takes the dict of ``db.report.build_report`` and, per listed
cell, the PNG bytes of its crop (``pipeline.crops``); no file or network is referenced, so the
page can be mailed or archived as is.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

#: Plot size in SVG user units (pixels).
PLOT_WIDTH, PLOT_HEIGHT = 420, 300


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def confusion_svg(matrix: Sequence[Sequence[int]], cell: int = 30) -> str:
    """The confusion matrix (rows true digit, columns read digit), shaded by row share."""
    size = len(matrix)
    margin = 36
    total = margin + size * cell
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total + 10}" height="{total + 10}" '
        f'role="img" aria-label="confusion matrix">',
        f'<text x="{margin}" y="12" font-size="11">read digit →</text>',
        f'<text x="10" y="{margin + 10}" font-size="11" transform="rotate(90 10 {margin + 10})">'
        "true digit →</text>",
    ]
    for t, row in enumerate(matrix):
        row_total = max(1, sum(row))
        y = margin + t * cell
        parts.append(f'<text x="{margin - 14}" y="{y + cell // 2 + 4}" font-size="11">{t}</text>')
        parts.append(
            f'<text x="{margin + t * cell + cell // 2 - 3}" y="{margin - 6}" font-size="11">{t}'
            "</text>"
        )
        for p, count in enumerate(row):
            share = count / row_total
            shade = int(255 * (1 - share))
            colour = f"rgb({shade},{int(255 - 140 * share)},255)"
            x = margin + p * cell
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour}" '
                f'stroke="#ccc"><title>true {t}, read {p}: {count}</title></rect>'
            )
            if count:
                fill = "#fff" if share > 0.5 else "#000"
                parts.append(
                    f'<text x="{x + 3}" y="{y + cell // 2 + 4}" font-size="9" fill="{fill}">'
                    f"{count}</text>"
                )
    parts.append("</svg>")
    return "".join(parts)


def _axes(x_label: str, y_label: str) -> list[str]:
    left, bottom = 50, PLOT_HEIGHT - 40
    return [
        f'<line x1="{left}" y1="20" x2="{left}" y2="{bottom}" stroke="#000"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{PLOT_WIDTH - 10}" y2="{bottom}" stroke="#000"/>',
        f'<text x="{(left + PLOT_WIDTH) // 2 - 40}" y="{PLOT_HEIGHT - 8}" font-size="11">'
        f"{escape(x_label)}</text>",
        f'<text x="12" y="{bottom}" font-size="11" transform="rotate(-90 12 {bottom})">'
        f"{escape(y_label)}</text>",
    ]


def coverage_svg(curve: Sequence[dict]) -> str:
    """Accepted share (x) against the exact share among accepted cells (y), one point per
    confidence threshold, labelled with the threshold."""
    left, bottom, top, right = 50, PLOT_HEIGHT - 40, 20, PLOT_WIDTH - 10
    points = [p for p in curve if p["accepted_share"] is not None and p["accepted_exact"]]
    lows = [p["accepted_exact"] for p in points]
    y_min = min([*lows, 0.9]) if lows else 0.9
    y_min = max(0.0, y_min - 0.01)

    def xy(point: dict) -> tuple[float, float]:
        x = left + point["accepted_share"] * (right - left)
        span = (point["accepted_exact"] - y_min) / (1 - y_min) if y_min < 1 else 1
        return x, bottom - span * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        'role="img" aria-label="coverage against accuracy">',
        *_axes("share of cells accepted automatically", "exact among accepted"),
        f'<text x="{left - 44}" y="{top + 4}" font-size="10">100%</text>',
        f'<text x="{left - 44}" y="{bottom}" font-size="10">{_share(y_min)}</text>',
        f'<text x="{right - 30}" y="{bottom + 14}" font-size="10">100%</text>',
    ]
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f5fbf"/>')
        for point in points:
            x, y = xy(point)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f5fbf"><title>threshold '
                f"{point['threshold']}: accepted {_share(point['accepted_share'])}, exact "
                f"{_share(point['accepted_exact'])}</title></circle>"
                f'<text x="{x + 4:.1f}" y="{y - 4:.1f}" font-size="9">{point["threshold"]}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(rows: Sequence[dict], label_key: str, value_key: str, bar: int = 18) -> str:
    """Horizontal bars of ``row[value_key]`` (a share 0..1) labelled by ``row[label_key]``."""
    height = 20 + bar * max(1, len(rows)) + 10
    label_width, right = 160, PLOT_WIDTH - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{height}" '
        'role="img" aria-label="accuracy by group">'
    ]
    for index, row in enumerate(rows):
        y = 20 + index * bar
        value = row.get(value_key) or 0.0
        width = value * (right - label_width)
        parts.append(
            f'<text x="4" y="{y + bar - 6}" font-size="10">{escape(str(row[label_key]))[:28]}'
            f'</text><rect x="{label_width}" y="{y + 2}" width="{width:.1f}" height="{bar - 4}" '
            f'fill="#1f5fbf"/><text x="{label_width + width + 4:.1f}" y="{y + bar - 6}" '
            f'font-size="10">{_share(row.get(value_key))} of {row.get("cells", "")}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _img(png: bytes | None) -> str:
    if not png:
        return "<em>no crop</em>"
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="cell crop" src="data:image/png;base64,{data}">'


def _cell_table(cells: Sequence[dict], crops: Sequence[bytes | None], columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in ["crop", *columns])
    body = []
    for cell, crop in zip(cells, crops, strict=True):
        values = "".join(f"<td>{escape(str(cell.get(c, '')))}</td>" for c in columns)
        body.append(f"<tr><td>{_img(crop)}</td>{values}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(
    report: dict,
    suspect_crops: Sequence[bytes | None],
    least_confident_crops: Sequence[bytes | None],
    title: str = "escrutinio: readings against the typed results",
) -> str:
    """One HTML page of ``report``; the crop lists follow the report's two cell lists."""
    digits = report["digits"]
    verdict_rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{count}</td></tr>"
        for name, count in report["verdicts"].items()
    )
    per_class = "".join(
        f"<tr><td>{row['class']}</td><td>{row['support']}</td><td>{row['tp']}</td>"
        f"<td>{row['tn']}</td><td>{row['fp']}</td><td>{row['fn']}</td>"
        f"<td>{row['precision']:.4f}</td><td>{row['recall']:.4f}</td><td>{row['f1']:.4f}</td>"
        "</tr>"
        for row in report["per_class"]
    )
    districts = [
        {**row, "label": f"{row['distrito_id']} {row['distrito_nombre'] or ''}"}
        for row in report["by_district"]
    ]
    suspects = report["suspected_manual_errors"]
    least = report["least_confident_cells"]
    key_columns = ["mesa_id", "cargo_id", "votos_tipo", "agrupacion_id", "lista_numero"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 2em; }}
img {{ image-rendering: pixelated; max-height: 60px; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>Measured on the {report["cells"]} cells that were read and typed in a column whose typed
entries add up to the envelopes (or that a person reviewed: {report["reviewed_cells"]}), so
typing errors do not count against the reader.</p>
<table>
<tr><th>numbers read exactly</th><td>{_share(report["exact"])}</td></tr>
<tr><th>accepted automatically (confidence &ge; {report["threshold"]}, no review flag)</th>
<td>{_share(report["accepted_share"])}</td></tr>
<tr><th>exact among the accepted</th><td>{_share(report["accepted_exact"])}</td></tr>
<tr><th>digits paired / digit accuracy</th>
<td>{digits["n"]} / {_share(digits["accuracy"] if digits["n"] else None)}</td></tr>
<tr><th>macro precision / recall / F1</th>
<td>{digits["macro_precision"]:.4f} / {digits["macro_recall"]:.4f} /
{digits["macro_f1"]:.4f}</td></tr>
</table>
<h2>Verdicts</h2>
<table><tr><th>verdict</th><th>cells</th></tr>{verdict_rows}</table>
<div class="plots">
<figure>{confusion_svg(report["confusion"])}<figcaption>Digit confusion</figcaption></figure>
<figure>{coverage_svg(report["coverage"])}<figcaption>Coverage against accuracy, per
confidence threshold</figcaption></figure>
<figure>{bars_svg(districts, "label", "exact_share")}<figcaption>Numbers read exactly, by
district</figcaption></figure>
</div>
<h2>Per digit</h2>
<table><tr><th>digit</th><th>support</th><th>TP</th><th>TN</th><th>FP</th><th>FN</th>
<th>precision</th><th>recall</th><th>F1</th></tr>{per_class}</table>
<h2>Suspected data-entry errors ({len(suspects)})</h2>
{
        _cell_table(
            suspects,
            suspect_crops,
            [
                *key_columns,
                "manual",
                "reading",
                "confidence",
                "manual_column_sum",
                "reading_column_sum",
            ],
        )
    }
<h2>Least confident cells ({len(least)})</h2>
{
        _cell_table(
            least,
            least_confident_crops,
            [*key_columns, "reading", "confidence", "flags", "verdict", "manual"],
        )
    }
</body></html>
"""
