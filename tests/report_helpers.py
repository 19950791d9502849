"""Reading a pipeline report back: its blocks, tables and chart data, as a reader sees them."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

import numpy as np

_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "<i1", "i2": "<i2", "i4": "<i4", "u1": "<u1",
           "u2": "<u2", "u4": "<u4", "i8": "<i8"}  # fmt: skip


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def block(page: str, title: str) -> str:
    """The HTML of the block (or KPI tile section) whose heading is ``title``."""
    start = page.index(f"<h3>{html.escape(title)}</h3>")
    end = page.find('<div class="block', start)
    section_end = page.find("</section>", start)
    if end == -1 or (section_end != -1 and section_end < end):
        end = section_end
    return page[start:end]


def table_rows(fragment: str) -> list[list[str]]:
    """The body rows of the first table in ``fragment``, as displayed text."""
    body = fragment[fragment.index("<tbody>") : fragment.index("</tbody>")]
    return [
        [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def empty_text(fragment: str) -> str | None:
    found = re.search(r'<p class="empty">(.*?)</p>', fragment, re.S)
    return _text(found[1]) if found else None


def note_text(fragment: str) -> str:
    return _text(re.search(r'<p class="note">(.*?)</p>', fragment, re.S)[1])


def _decode(value: Any) -> Any:
    """Plotly writes numeric arrays as base64 typed arrays ({dtype, bdata})."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=_DTYPES[value["dtype"]])
        return [None if np.isnan(v) else float(v) for v in data.astype(float)]
    return value


def chart_traces(page: str, div_id: str) -> list[dict[str, Any]]:
    """The traces a chart was drawn with: Plotly.newPlot("<div_id>", [traces], ...)."""
    found = re.search(rf'Plotly\.newPlot\(\s*"{re.escape(div_id)}",\s*', page)
    assert found, f"no chart {div_id}"
    start = found.end()
    traces, _ = json.JSONDecoder().raw_decode(page, start)
    return [{k: _decode(v) for k, v in trace.items()} for trace in traces]


def kpi_tile(page: str, name: str) -> tuple[str, str, str]:
    """(definition, value, detail) of a headline KPI tile."""
    found = re.search(
        rf'<h3 title="([^"]*)">{re.escape(name)}</h3>\s*<p class="value">(.*?)</p>\s*'
        rf'<p class="detail">(.*?)</p>',
        page,
        re.S,
    )
    assert found, f"no KPI tile {name}"
    return html.unescape(found[1]), _text(found[2]), _text(found[3])
