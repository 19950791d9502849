"""End to end: a quarantined row of a CRM export is named by the user's own export file and
line (and column, for a row taken from one cell), in the run's messages and in
quality.quarantine, never only by the converted file the user never wrote.

Fixture tests/fixtures/export_refs, four sources in one run (quality.quarantine_max_share
0.6, so that one bad row of a tiny file is quarantined, not a rejected batch), each
batch 2026-03-14T0600; lines count the header as line 1:

| source | file:line | what is wrong | quarantined |
| --- | --- | --- | --- |
| pd (Pipedrive, deals file) | deals.csv:3 | deal 2's value `12k` | opportunity pd:2 (amount_parses); its creation stage change, derived from that deal row, for the missing deal (opportunity_id_exists) |
| pd | deal_changelog.csv:3 | deal 3's stage move at `sometime in January` | that stage change (changed_at) |
| pdlog (Pipedrive, change log only) | deal_changes.csv:6 | deal 1's stage move at `next Tuesday` | that stage change (changed_at) |
| pdlog | deal_changes.csv:7 | deal 2's add_time value `8th of January` | the deal rebuilt from it (created_at), named by its add_time row; its stage_id row, deal_changes.csv:9, for the missing deal |
| hs (HubSpot) | deals.csv:3, column hs_v2_date_entered_qualifiedtobuy | deal 1002's date entered `someday` | that stage change (changed_at) |
| home (mapping file) | deals.csv:3, column Entered Demo | D-2's date `31.02.2026` (no such day) | that stage change (changed_at) |

8 rows in all; everything else loads: opportunities 3 − 1 + 2 − 1 + 2 + 2 = 7.
Stage changes per source (the message's "of N"): pd 6 (deal 1 creation + move, deal 2
creation, deal 3 creation + bad move + won), pdlog 4 (deal 1's three stage_id rows,
deal 2's one), hs 5 (1001: 2 dates, 1002: 3), home 5 (D-1: 2 dates, D-2: 3).
"""  # noqa: E501

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from pipeline_helpers import query

from orchestration.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "export_refs"
AS_OF = "2026-03-15T00:00:00Z"
BATCH = "2026-03-14T0600"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("export_refs")
    config = tmp / "crm.yaml"
    config.write_text(
        "quality: {quarantine_max_share: 0.6}\n"
        "sources:\n"
        f"  - {{name: pd, kind: pipedrive, landing_dir: {FIXTURE / 'pipedrive'}}}\n"
        f"  - {{name: pdlog, kind: pipedrive, landing_dir: {FIXTURE / 'pipedrive_changelog'}}}\n"
        f"  - {{name: hs, kind: hubspot, landing_dir: {FIXTURE / 'hubspot'}}}\n"
        f"  - {{name: home, kind: mapping, landing_dir: {FIXTURE / 'mapping'}, "
        f"mapping: {FIXTURE / 'mapping.yaml'}}}\n",
        encoding="utf-8",
    )
    warehouse = tmp / "warehouse.duckdb"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(
            ["run", "--config", str(config), "--warehouse", str(warehouse), "--as-of", AS_OF]
        )
    assert code == 0, err.getvalue()
    return warehouse, err.getvalue()


def test_the_quarantine_names_the_users_file_line_and_column(run):
    warehouse, _ = run
    got = query(
        warehouse,
        "select split_part(raw_row->>'opportunity_id', ':', 1), entity, export_file, "
        "export_line, export_column, failed_rules from quality.quarantine order by all",
    )
    assert [(*r[:5], sorted(json.loads(r[5]))) for r in got] == [
        ("home", "stage_changes", "deals.csv", "3", "Entered Demo",
         ["stage_changes.changed_at_not_null", "stage_changes.changed_at_parses"]),
        ("hs", "stage_changes", "deals.csv", "3", "hs_v2_date_entered_qualifiedtobuy",
         ["stage_changes.changed_at_not_null", "stage_changes.changed_at_parses"]),
        ("pd", "opportunities", "deals.csv", "3", None, ["opportunities.amount_parses"]),
        ("pd", "stage_changes", "deal_changelog.csv", "3", None,
         ["stage_changes.changed_at_not_null", "stage_changes.changed_at_parses"]),
        ("pd", "stage_changes", "deals.csv", "3", None, ["stage_changes.opportunity_id_exists"]),
        ("pdlog", "opportunities", "deal_changes.csv", "7", None,
         ["opportunities.created_at_not_null", "opportunities.created_at_parses"]),
        ("pdlog", "stage_changes", "deal_changes.csv", "6", None,
         ["stage_changes.changed_at_not_null", "stage_changes.changed_at_parses"]),
        ("pdlog", "stage_changes", "deal_changes.csv", "9", None,
         ["stage_changes.opportunity_id_exists"]),
    ]  # fmt: skip
    # The converted file's reference stays beside it, as before.
    assert query(warehouse, "select distinct source_file from quality.quarantine order by 1") == [
        (f"{BATCH}/opportunities.csv",),
        (f"{BATCH}/stage_changes.csv",),
    ]
    assert query(warehouse, "select count(*) from raw.opportunities") == [(7,)]


@pytest.mark.parametrize(
    ("rule", "example", "rows"),
    [
        ("opportunities.amount_parses (error, row): 1 of 3", "pd:2", "deals.csv:3"),
        ("stage_changes.opportunity_id_exists (error, row): 1 of 6", "pd:2", "deals.csv:3"),
        ("stage_changes.changed_at_parses (error, row): 1 of 6", "pd:3", "deal_changelog.csv:3"),
        ("opportunities.created_at_parses (error, row): 1 of 2", "pdlog:2", "deal_changes.csv:7"),
        ("stage_changes.changed_at_parses (error, row): 1 of 4", "pdlog:1", "deal_changes.csv:6"),
        ("stage_changes.opportunity_id_exists (error, row): 1 of 4", "pdlog:2",
         "deal_changes.csv:9"),
        ("stage_changes.changed_at_parses (error, row): 1 of 5", "hs:1002",
         "deals.csv:3 (column hs_v2_date_entered_qualifiedtobuy)"),
        ("stage_changes.changed_at_parses (error, row): 1 of 5", "home:D-2",
         "deals.csv:3 (column Entered Demo)"),
    ],
)  # fmt: skip
def test_each_message_names_the_users_file_and_line(run, rule, example, rows):
    _, err = run
    lines = [line for line in err.splitlines() if line.strip().startswith(rule) and example in line]
    assert len(lines) == 1, err
    assert f"Rows: {rows}. Fix:" in lines[0]


def test_no_message_names_only_a_converted_file(run):
    _, err = run
    assert not re.search(r"(opportunities|stage_changes)\.csv:\d", err), err


def test_the_run_summary_names_the_first_quarantined_rows(run):
    warehouse, err = run
    ((run_id,),) = query(warehouse, "select distinct run_id from quality.quarantine")
    # The first five in file order (one batch name for all four sources), line numbers
    # as numbers: deal_changelog.csv, deal_changes.csv 6, 7, 9, then deals.csv:3, held by
    # four sources' rows: the first by its converted row (pd:2's opportunity, row 2),
    # the other three counted.
    assert (
        "8 row(s) quarantined with their reasons (deal_changelog.csv:3, deal_changes.csv:6, "
        "deal_changes.csv:7, deal_changes.csv:9, deals.csv:3 and 3 more): "
        f"select * from quality.quarantine where run_id = '{run_id}'"
    ) in err.splitlines()
