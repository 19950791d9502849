"""End to end: `crm-pipeline run` writes the pipeline report, a blocked run does not, and
the report renders in a real browser (headless Chromium) with the network off.

The browser test loads the demo report from file:// in a network namespace with no
network (or, where one cannot be made, through a proxy that does not exist), under a
Content-Security-Policy that lets nothing be fetched, and reads back what the page did:
how many chart <div>s plotly.js filled with an <svg> and at what size, which resources it
loaded, which loads the policy refused, which script errors it raised or logged
(console.error), and the headline numbers it shows, which must be those worked out from
kpi_monthly. A control page that fetches, logs an error and throws one proves the probe
sees each. The screenshot is kept in test-artifacts/report.png ($CRM_TEST_ARTIFACTS).
"""

from __future__ import annotations

import contextlib
import html as html_module
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline
from report_helpers import kpi_tile

from orchestration.cli import main

pytestmark = pytest.mark.slow

SKELETON = Path(__file__).parents[1] / "fixtures" / "skeleton"
DEMO_AS_OF = "2026-11-29T06:00:00"
# The rules the demo's defective rows fail (ingestion/synthetic/defects.py).
TYPE_RULE = "activities.activity_type_in_value_set"
DATE_RULE = "activities.occurred_at_not_null"
ID_RULE = "leads.lead_id_not_null"
CHROMIUM = "/usr/bin/chromium"
# Where the browser test leaves its screenshot: $CRM_TEST_ARTIFACTS, else test-artifacts/
# at the top of the repository (ignored by git).
ARTIFACTS = Path(
    os.environ.get("CRM_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    """The demo (synthetic source, 1,000 opportunities) run once into <tmp>/data/."""
    data = tmp_path_factory.mktemp("demo") / "data"
    config = data.parent / "crm.yaml"
    config.write_text("synthetic: {opportunities: 1000, batches: 2, seed: 7}\n")
    argv = ["run", "--config", str(config), "--landing", str(data / "landing"),
            "--warehouse", str(data / "warehouse.duckdb"), "--as-of", DEMO_AS_OF]  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return data, out.getvalue()


def test_a_run_writes_the_dated_and_the_latest_report(demo):
    data, stdout = demo
    reports = data / "reports"
    dated = reports / "pipeline-2026-11-29T060000.html"
    latest = reports / "latest.html"
    assert sorted(p.name for p in reports.iterdir()) == ["latest.html", dated.name]
    assert latest.read_bytes() == dated.read_bytes()
    # The path closes the run summary.
    assert stdout.rstrip().splitlines()[-1] == f"Report: {latest}  (open it in a browser)"
    page = latest.read_text()
    assert "Marts as of <strong>2026-11-29 06:00:00</strong>" in page
    # Every mart was built: no section explains a missing or empty one.
    assert "Not available:" not in page and "Nothing to show" not in page
    # The demo's defective rows were quarantined (1,000 opportunities: 4 of the first
    # batch's 8,732 activities, 1 of its 2,526 leads; defects.py), and the report shows
    # them by rule instead of "No row has been quarantined".
    assert query(data / "warehouse.duckdb", "select count(*) from quality.quarantine") == [(5,)]
    assert "No row has been quarantined" not in page
    for rule, rows in ((TYPE_RULE, 2), (DATE_RULE, 2), (ID_RULE, 1)):
        assert re.search(rf"<td>{re.escape(rule)}</td>\s*<td[^>]*>{rows}</td>", page), rule
    # The run's dbt build is in the data-quality section: every one of its tests passed.
    built = json.loads((data / "dbt_target" / "run_results.json").read_text())
    tests = sum(r["unique_id"].startswith("test.") for r in built["results"])
    assert tests > 50 and f"{tests} of {tests} dbt tests passed in the latest dbt build" in page
    # The tiles show what the summary printed.
    win_rate = re.search(r"win rate +(\S+)", stdout)[1]
    deal = re.search(r"average deal size +(\S+)", stdout)[1]
    assert kpi_tile(page, "Win rate")[1] == win_rate
    assert kpi_tile(page, "Average deal size")[1] == deal
    # Beside the default warehouse the docs link reaches data/docs/ (make docs).
    assert '<a href="../docs/index.html"' in page


def test_a_blocked_run_writes_no_report(tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(SKELETON, landing)
    warehouse = tmp_path / "warehouse.duckdb"
    assert run_pipeline(landing, warehouse, "2026-03-15T00:00:00Z") == 0
    reports = tmp_path / "reports"
    assert (reports / "pipeline-2026-03-15T000000.html").exists()
    assert "Report:" in capsys.readouterr().out
    shutil.rmtree(reports)
    bad = landing / "2026-03-16T0000"
    bad.mkdir()
    (bad / "opportunities.csv").write_text(
        "opportunity_id,created_at,stage,amount\nO7,2026-03-02T00:00:00Z,Demo Booked,100\n"
    )
    assert run_pipeline(landing, warehouse, "2026-03-16T00:00:00Z") == 1
    captured = capsys.readouterr()
    assert "blocked: check raw/opportunities:opportunities_hygiene failed" in captured.err
    assert not reports.exists()
    assert "Report:" not in captured.out


# --- the browser ---------------------------------------------------------------------------

# Nothing may be loaded from anywhere; inline scripts and styles (the page's own) run.
_CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    'img-src data: blob:; font-src data:">'
)
_RECORDER = """<script>
window.__blocked = []; window.__errors = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__blocked.push(e.blockedURI); });
window.addEventListener('error', function (e) {
  var t = e.target;  /* a script or image that failed to load, or a script error */
  window.__errors.push(t && t !== window ? 'failed to load ' + (t.src || t.href)
                                         : String(e.message)); }, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__errors.push(String(e.reason)); });
var consoleError = console.error;
console.error = function () {
  window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  return consoleError.apply(console, arguments); };
</script>"""
_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var root = document.documentElement;
  var divs = Array.prototype.slice.call(document.querySelectorAll('div.plotly-graph-div'));
  root.setAttribute('data-charts', String(divs.length));
  root.setAttribute('data-rendered', String(divs.filter(function (d) {
    return d.querySelector('svg.main-svg') !== null; }).length));
  root.setAttribute('data-fetched', JSON.stringify(
    performance.getEntriesByType('resource').map(function (e) { return e.name; })));
  root.setAttribute('data-blocked', JSON.stringify(window.__blocked));
  root.setAttribute('data-errors', JSON.stringify(window.__errors));
  root.setAttribute('data-sizes', JSON.stringify(divs.map(function (d) {
    var svg = d.querySelector('svg.main-svg'), box = svg && svg.getBoundingClientRect();
    return [d.id, box ? Math.round(box.width) : 0, box ? Math.round(box.height) : 0]; })));
  var tiles = {};
  document.querySelectorAll('.kpi').forEach(function (k) {
    var name = k.querySelector('h3').textContent.trim();
    tiles[name] = k.querySelector('.value').textContent.trim(); });
  root.setAttribute('data-kpis', JSON.stringify(tiles));
}, 1000); });
</script>"""


def chromium() -> str:
    """Debian's chromium, installed when missing (make install does it too)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0:
        # The browser check is part of the suite: a missing browser fails it, never hides it.
        pytest.fail("chromium is not installed, and only root can apt-get install it: "
                    "run `make install` as root or `apt-get install chromium`")  # fmt: skip
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"chromium could not be installed ({' '.join(step)}): "
                        f"{done.stderr.strip()[-300:]}")  # fmt: skip
    return CHROMIUM


def _offline_prefix() -> tuple[list[str], list[str]]:
    """How to take the network away: a network namespace of its own, else a dead proxy."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"]).returncode == 0:
        return ["unshare", "--net"], []
    return [], ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    prefix, flags = _offline_prefix()
    command = [*prefix, chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=20000",
               *flags, *extra, page.resolve().as_uri()]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def probe(html: str, page: Path, tmp: Path) -> dict[str, object]:
    """Load ``html`` (with the recorder and probe added) and return what the page did."""
    html = html.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + _CSP + _RECORDER, 1)
    page.write_text(html.replace("</body>", _PROBE + "</body>"))
    done = browse(page, tmp, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)[0]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', root))
    assert attrs, f"the probe did not run: {done.stdout[:500]}"
    return {k[5:]: json.loads(html_module.unescape(v)) for k, v in attrs.items()}


# The headline tiles, worked out from kpi_monthly here rather than by the report's code:
# win rate, deal size and cycle over the deals closed in the three months ending with the
# last month that closed any; velocity and the open pipeline of the last month.
HEADLINE_SQL = """
with m as (select * from marts.kpi_monthly),
     w as (select max(month) as month from m where won_count + lost_count > 0),
     closed as (
         select sum(won_count) as won, sum(won_count + lost_count) as closed,
                sum(won_amount) as won_amount, sum(avg_sales_cycle_days * won_count) as days
         from m, w where m.month > w.month - interval 3 month and m.month <= w.month)
select won / closed, won_amount / won, days / won,
       (select pipeline_velocity_per_day from m order by month desc limit 1),
       (select open_amount_end from m order by month desc limit 1)
from closed
"""


def test_every_chart_renders_offline_and_nothing_is_fetched(demo, tmp_path):
    data, _ = demo
    page = (data / "reports" / "latest.html").read_text()
    charts = page.count('class="plotly-graph-div"')
    assert charts >= 17  # 5 KPI trends and every section's charts
    seen = probe(page, tmp_path / "report.html", tmp_path)
    sizes, tiles = seen.pop("sizes"), seen.pop("kpis")
    assert seen == {"charts": charts, "rendered": charts, "fetched": [], "blocked": [],
                    "errors": []}  # fmt: skip
    # Every chart was drawn with an area, not collapsed to nothing.
    assert len(sizes) == charts
    assert [s for s in sizes if s[1] < 100 or s[2] < 80] == [], sizes
    # The quarantine chart among them: the demo's defective rows, held back by rule.
    assert "chart-quarantine" in [s[0] for s in sizes]
    # The tiles the browser shows hold the marts' numbers.
    ((win_rate, deal, cycle, velocity, open_amount),) = query(
        data / "warehouse.duckdb", HEADLINE_SQL
    )
    assert tiles == {
        "Win rate": f"{win_rate:.1%}",
        "Average deal size": f"{deal:,.0f}",
        "Sales cycle": f"{cycle:.1f} days",
        "Pipeline velocity": f"{velocity:,.0f} / day",
        "Open pipeline": f"{open_amount:,.0f}",
    }


def test_the_probe_sees_a_page_that_fetches_or_fails(tmp_path):
    # The control: the same probe on a page that loads a script and an image from the web,
    # logs an error and throws one, and has a chart that was never drawn.
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<div class="plotly-graph-div" id="never-drawn"></div>'
        '<div class="kpi"><h3>Win rate</h3><p class="value">9.9%</p></div>'
        '<script src="https://cdn.example.invalid/plotly.min.js"></script>'
        '<img src="https://example.invalid/pixel.png">'
        '<script>console.error("control", 1); no_such_function();</script></body></html>'
    )
    seen = probe(page, tmp_path / "control.html", tmp_path)
    assert seen["charts"] == 1 and seen["rendered"] == 0
    assert seen["sizes"] == [["never-drawn", 0, 0]]
    assert seen["kpis"] == {"Win rate": "9.9%"}
    assert sorted(seen["blocked"]) == [
        "https://cdn.example.invalid/plotly.min.js",
        "https://example.invalid/pixel.png",
    ]
    assert sorted(seen["errors"]) == [
        "Uncaught ReferenceError: no_such_function is not defined",
        "console.error: control 1",
        "failed to load https://cdn.example.invalid/plotly.min.js",
        "failed to load https://example.invalid/pixel.png",
    ]


def test_screenshot_of_the_report(demo, tmp_path):
    data, _ = demo
    # Kept after the suite, for a person (or CI's artifact upload) to look at.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = browse(
        data / "reports" / "latest.html",
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1400,2400",
        "--hide-scrollbars",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 2400)
    # A blank or unstyled page compresses to a few kB; the charts do not.
    assert len(png) > 100_000
