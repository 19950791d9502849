"""End to end through the CLI: what became of every export row, and the two ways a CRM
batch used to fail silently or loudly for the wrong reason.

1. A Salesforce export whose Lead.csv has no CreatedDate (a report-style export). Leads
   are optional objects: Lead.csv is set aside with a note and a WARN naming the file
   and the column, the deals and everything else publish. The fixture is
   tests/fixtures/salesforce with that one column cut out of batch 2026-03-07T0600's
   Lead.csv; its known answers are those of tests/e2e/test_source_salesforce.py.
2. A batch whose exports hold rows but convert into no opportunity: exit 0 (nothing is
   wrong with the rows themselves) but never a silent green run: a WARN with the reason,
   printed and in the alert log beside the warehouse.
"""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

FIXTURE = Path(__file__).parents[1] / "fixtures" / "salesforce"
AS_OF = "2026-03-15T00:00:00Z"
B1 = "2026-03-07T0600"

pytestmark = pytest.mark.slow


def drop_column(path: Path, column: str) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    i = rows[0].index(column)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(r[:i] + r[i + 1 :] for r in rows)


def alerts(warehouse: Path) -> list[dict]:
    log = warehouse.parent / "logs" / "alerts.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def run_id(warehouse: Path) -> str:
    ((rid,),) = query(warehouse, "select distinct run_id from quality.source_reconciliation")
    return rid


def test_a_lead_file_without_created_date_does_not_block_the_deals(tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    drop_column(landing / B1 / "Lead.csv", "CreatedDate")
    warehouse = tmp_path / "warehouse.duckdb"

    code = run_pipeline(landing, warehouse, AS_OF, source="salesforce")
    err = capsys.readouterr().err
    assert code == 0, err

    # The deals publish as with a complete export: 8 opportunities, Opp1, Opp2 and Opp7
    # won (Opp6's win is deleted), Opp3 and Opp4 lost, 26 stage entries; no lead.
    assert query(warehouse, "select count(*) from raw.opportunities") == [(8,)]
    assert query(
        warehouse,
        "select count(*) filter (status = 'won'), count(*) filter (status = 'lost') "
        "from marts.fct_opportunities where not is_deleted",
    ) == [(3, 2)]
    assert query(warehouse, "select count(*) from raw.stage_changes") == [(26,)]
    assert query(warehouse, "select count(*) from raw.leads") == [(0,)]
    assert query(
        warehouse, "select count(*) from quality.ingestion_log where status = 'rejected'"
    ) == [(0,)]

    # Lead.csv's 6 rows are accounted for, set aside with the reason.
    reason = "in a file without created_at, which leads require"
    assert query(
        warehouse,
        "select rows_read, rows_emitted, rows_set_aside, set_aside, skip_reason "
        "from quality.source_reconciliation where export_file = 'Lead.csv'",
    ) == [(6, 0, 6, json.dumps({reason: 6}), reason)]

    rid = run_id(warehouse)
    warning = (
        f"  salesforce batch {B1}: Lead.csv set aside, 6 rows {reason}; no leads from it. "
        "Lead.csv has no CreatedDate (for created_at) column, which the leads contract "
        "requires: its rows are set aside. The rest of the batch loads; export Lead.csv with "
        "that field to load them."
    )
    assert "warning: check raw/opportunities:source_reconciliation:\n" + warning + "\n" in err
    # Per source, by hand: batch 1 reads 6 + 3 + 3 + 2 + 6 + 24 + 3 + 3 + 3 + 7 = 60 rows
    # and converts 6 + 3 + 3 + 2 + 0 + 22 + 3 + 3 + 3 + 5 = 50; batch 2 reads 4 + 7 + 2 +
    # 2 = 15 and converts 4 + 6 + 1 + 2 = 13. Set aside: 6 leads, 2 + 1 history rows that
    # change no stage, Tsk5 (deleted), a quantity and a product-family quota.
    assert (
        "salesforce: 14 export files, 75 rows read, 63 converted, 12 set aside (6 " + reason
    ) in err
    assert "alert: Data quality warning: CRM export files (source_reconciliation)" in err

    (alert,) = [a for a in alerts(warehouse) if a["check"] == "source_reconciliation"]
    assert (alert["kind"], alert["severity"], alert["run_id"]) == ("check_warning", "warn", rid)
    assert "Lead.csv set aside" in alert["message"] and "CreatedDate" in alert["message"]


def test_a_batch_without_any_opportunity_warns(tmp_path, capsys):
    # One incremental export holding accounts and tasks only: 5 rows, no deal.
    batch = tmp_path / "landing" / "2026-03-14T0600"
    batch.mkdir(parents=True)
    files = {
        "Account.csv": """
            Id,Name,CreatedDate,LastModifiedDate
            0018d000001AcmeAAA,Acme,2026-01-02T09:00:00.000Z,2026-03-01T09:00:00.000Z
            0018d000001GlbxAAA,Globex,2026-01-03T09:00:00.000Z,2026-03-02T09:00:00.000Z
        """,
        "Task.csv": """
            Id,WhatId,Subject,ActivityDate,Status,Type,IsDeleted,CreatedDate
            00T8d000001Tsk1AAA,0018d000001AcmeAAA,Intro call,2026-03-10,Completed,Call,false,2026-03-10T09:00:00.000Z
            00T8d000001Tsk2AAA,0018d000001GlbxAAA,Follow-up,2026-03-11,Completed,Email,false,2026-03-11T09:00:00.000Z
            00T8d000001Tsk3AAA,0018d000001GlbxAAA,Logged twice,2026-03-11,Completed,Call,true,2026-03-11T09:05:00.000Z
        """,  # noqa: E501
    }
    for name, text in files.items():
        (batch / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    warehouse = tmp_path / "warehouse.duckdb"

    code = run_pipeline(tmp_path / "landing", warehouse, AS_OF, source="salesforce")
    err = capsys.readouterr().err
    # Nothing in the rows is wrong: published, not blocked; but not silently green.
    assert code == 0, err
    assert query(warehouse, "select count(*) from raw.opportunities") == [(0,)]
    assert query(warehouse, "select count(*) from raw.accounts") == [(2,)]

    rid = run_id(warehouse)
    finding = (
        "salesforce batch 2026-03-14T0600: 5 rows read, no opportunity converted. No "
        "Opportunity file: no opportunities in this batch. No OpportunityHistory file: no "
        "stage changes in this batch (a deal without any history is taken to be in its "
        "current stage since its creation). Converted instead: Account.csv → accounts: 2; "
        "Task.csv → activities: 2. Set aside: Task.csv: 1 deleted records. If the batch "
        "should hold deals, export it again with its deals file "
        "(quality.source_reconciliation has every file's rows)."
    )
    assert f"warning: check raw/opportunities:source_reconciliation:\n  {finding}\n" in err
    assert (
        "salesforce: 2 export files, 5 rows read, 4 converted, 1 set aside (1 deleted "
        f"records): select * from quality.source_reconciliation where run_id = '{rid}'"
    ) in err
    assert query(
        warehouse,
        "select severity, success, message from quality.validation_results "
        "where rule = 'source.no_opportunities'",
    ) == [("warn", False, finding)]

    (alert,) = [a for a in alerts(warehouse) if a["check"] == "source_reconciliation"]
    assert (alert["kind"], alert["severity"]) == ("check_warning", "warn")
    assert alert["message"].startswith(finding)
