"""The Model Ops page and the DAG-run tabs as server-rendered HTML: inline CSS and SVG, no script, no CDN.

Every value comes from :mod:`autoretrain.modelops.views` / :mod:`autoretrain.modelops.versions` and
is escaped here (MLflow tags, reasons and alert texts are untrusted). The layout is one column of
sections that wraps below 700 px; wide tables scroll inside their section, charts scale with the
page (SVG ``viewBox``). Links into Airflow open in the top window (the page runs in Airflow's iframe).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bad:#c62828;--ok:#2e7d32;--warn:#b26a00;--bg:#fff;
--card:#f7f9fb;--a:#1565c0;--b:#8e24aa;--c:#ef6c00}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0;padding:16px}h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:8px 0 4px}section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 14px;margin:0 0 14px}.sub{color:var(--muted);font-size:12px}.grid{display:flex;flex-wrap:wrap;gap:12px}
.role{flex:1 1 280px;background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px}
.role .v{font-size:22px;font-weight:600}.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 6px;
border-bottom:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.bad{color:var(--bad);font-weight:600}
.ok{color:var(--ok);font-weight:600}.warn{color:var(--warn);font-weight:600}.tag{display:inline-block;padding:0 6px;
border-radius:9px;background:#e3eaf2;font-size:12px;margin-right:4px}.tag.bad{background:#fde2e2}
.tag.ok{background:#e3f4e4}svg{width:100%;height:auto;display:block}.legend span{margin-right:12px;font-size:12px}
.chart{flex:1 1 330px;min-width:0;max-width:760px}
.grid.small{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr))}.grid.small .chart{max-width:none}
nav a{margin-right:10px;font-size:13px}a{color:var(--a)}
ul.reasons{margin:2px 0 0 16px;padding:0;font-size:12px;color:var(--muted)}
@media (max-width:700px){body{padding:8px}section{padding:10px 8px}.role .v{font-size:18px}
th,td{padding:3px 4px;font-size:12px}}
"""


def e(value: Any) -> str:
    """Escaped text of any value ('-' for None)."""
    return "-" if value is None else html.escape(str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def pct(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{100 * value:.1f} %"


def pvalue(value: Any) -> str:
    """A p-value with 3 significant digits (0.0001215 -> 0.000122), '-' when absent."""
    return "-" if not isinstance(value, int | float) else f"{value:.3g}"


def link(href: str | None, text: str, *, top: bool = False) -> str:
    if not href:
        return e(text)
    target = ' target="_top"' if top else ' target="_blank" rel="noopener noreferrer"'
    return f'<a href="{e(href)}"{target}>{e(text)}</a>'


def airflow_run_href(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def document(title: str, body: str, *, heading: str, sub: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{e(title)}</title><style>{CSS}</style></head>'
            f'<body><h1>{e(heading)}</h1><div class="sub">{sub}</div>{body}</body></html>')


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def reasons_list(reasons: Sequence[Any], limit: int = 6) -> str:
    items = "".join(f"<li>{e(r)}</li>" for r in list(reasons)[:limit])
    more = f"<li>... {len(reasons) - limit} more</li>" if len(reasons) > limit else ""
    return f'<ul class="reasons">{items}{more}</ul>' if items else ""


# -------------------------------------------------------------------------------------- charts
def line_chart(series: Mapping[str, Sequence[float | None]], *, labels: Sequence[str], colors: Sequence[str],
               y_max: float | None = None, marks: Sequence[bool] = (), dashed: Sequence[str] = (),
               title: str = "", width: int = 640, height: int = 160) -> str:
    """An SVG line chart: one polyline per series over the same x positions; ``marks`` circles points in red."""
    pad_l, pad_b, pad_t = 38, 22, 8
    values = [v for s in series.values() for v in s if isinstance(v, int | float)]
    top = y_max if y_max is not None else (max(values) * 1.1 if values and max(values) > 0 else 1.0)
    n = max((len(s) for s in series.values()), default=0)

    def x(i: int) -> float:
        return pad_l + (width - pad_l - 6) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - min(max(v / top, 0.0), 1.0))

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
             f'<line x1="{pad_l}" y1="{y(0):.1f}" x2="{width - 6}" y2="{y(0):.1f}" stroke="#9aa5b1"/>']
    for frac in (0.5, 1.0):
        parts.append(f'<line x1="{pad_l}" y1="{y(top * frac):.1f}" x2="{width - 6}" y2="{y(top * frac):.1f}" '
                     f'stroke="#e4e7eb"/><text x="2" y="{y(top * frac) + 4:.1f}" font-size="11" '
                     f'fill="#616e7c">{top * frac:.3g}</text>')
    for (name, points), color in zip(series.items(), colors, strict=False):
        dx, span = (width - pad_l - 6) / (n - 1 if n > 1 else 1), height - pad_t - pad_b
        coords = " ".join(f"{pad_l + dx * i:.1f},{pad_t + span * (1 - min(max(v / top, 0.0), 1.0)):.1f}"
                          for i, v in enumerate(points) if isinstance(v, int | float))
        dash = ' stroke-dasharray="5 4"' if name in dashed else ""
        if coords:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{coords}">'
                         f"<title>{e(name)}</title></polyline>")
        if len(points) <= 60 and name not in dashed:
            parts += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"><title>{e(name)} '
                      f'{e(labels[i] if i < len(labels) else i)}: {v:.4g}</title></circle>'
                      for i, v in enumerate(points) if isinstance(v, int | float)]
    first = next(iter(series.values()), [])
    for i, marked in enumerate(marks):
        point = first[i] if i < len(first) else None
        if marked and isinstance(point, int | float):
            parts.append(f'<circle class="breach" cx="{x(i):.1f}" cy="{y(point):.1f}" r="4.5" fill="none" '
                         f'stroke="#c62828" stroke-width="2"><title>breached: '
                         f'{e(labels[i] if i < len(labels) else i)}</title></circle>')
    if labels:
        parts.append(f'<text x="{pad_l}" y="{height - 5}" font-size="11" fill="#616e7c">{e(labels[0])}</text>'
                     f'<text x="{width - 6}" y="{height - 5}" font-size="11" fill="#616e7c" '
                     f'text-anchor="end">{e(labels[-1])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span style="color:{c}">&#9632; {e(name)}</span>'
                     for name, c in zip(series, colors, strict=False))
    return f'<div class="chart"><h3>{e(title)}</h3><div class="legend">{legend}</div>{"".join(parts)}</div>'


def bar_chart(values: Sequence[int], *, labels: Sequence[str], title: str, color: str = "#90a4ae",
              height: int = 90) -> str:
    width, pad_l, pad_b = 640, 38, 18
    top = max(values, default=0) or 1
    step = (width - pad_l - 6) / max(len(values), 1)
    bars = "".join(f'<rect x="{pad_l + i * step:.1f}" y="{height - pad_b - (height - pad_b - 6) * v / top:.1f}" '
                   f'width="{max(step - 1, 1):.1f}" height="{(height - pad_b - 6) * v / top:.1f}" fill="{color}">'
                   f'<title>{e(labels[i] if i < len(labels) else i)}: {v}</title></rect>'
                   for i, v in enumerate(values))
    axis = (f'<text x="2" y="14" font-size="11" fill="#616e7c">{top}</text>'
            f'<text x="{pad_l}" y="{height - 4}" font-size="11" fill="#616e7c">{e(labels[0]) if labels else ""}</text>')
    return (f'<div class="chart"><h3>{e(title)}</h3><svg viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{e(title)}">{bars}{axis}</svg></div>')


def short_time(iso: str | None) -> str:
    return "-" if not iso else iso[:16].replace("T", " ")
