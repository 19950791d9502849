"""Ingestion of canonical batches: typing, supersede, dedup, idempotency, clear errors."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from ingestion.errors import LandingError
from ingestion.loader import ingest
from ingestion.stages import StageMap
from ingestion.warehouse import connect, create_quality_tables

OPP = "opportunity_id,created_at,stage,amount,updated_at"
SC = "opportunity_id,stage,changed_at"


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "w.duckdb")
    yield c
    c.close()


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_types_and_lineage(con, landing, batch):
    batch(
        "2026-01-01T0600",
        "opportunities",
        "Opportunity_ID,created_at,stage,amount,is_won,close_date,extra_col",
        "o1,2026-01-01T10:00:00+02:00,prospecting,100.5,yes,2026-02-01,x",
        "o2,2026-01-02 08:30:00,Meeting,,0,,",
    )
    ingest(con, landing)
    got = rows(
        con,
        "select opportunity_id, created_at, amount, is_won, close_date, _batch_id, "
        "_source_file, _source_row, _attributes from raw.opportunities order by 1",
    )
    assert got == [
        (
            "o1",
            datetime(2026, 1, 1, 8, 0),  # +02:00 converted to UTC
            100.5,
            True,
            date(2026, 2, 1),
            "2026-01-01T0600",
            "2026-01-01T0600/opportunities.csv",
            1,
            '{"extra_col":"x"}',
        ),
        (
            "o2",
            datetime(2026, 1, 2, 8, 30),
            None,
            False,
            None,
            "2026-01-01T0600",
            "2026-01-01T0600/opportunities.csv",
            2,
            '{"extra_col":null}',
        ),
    ]


def test_source_timezone_applies_to_naive_timestamps(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-07-01 10:00:00,prospecting,1,")
    ingest(con, landing, source_timezone="Europe/Berlin")
    # Berlin is UTC+2 in July.
    assert rows(con, "select created_at from raw.opportunities") == [(datetime(2026, 7, 1, 8),)]


def test_later_update_supersedes_and_ties_go_to_later_batch(con, landing, batch):
    batch(
        "b1",
        "opportunities",
        OPP,
        "o1,2026-01-01,prospecting,100,2026-01-02T00:00:00Z",
        "o2,2026-01-01,prospecting,200,2026-01-05T00:00:00Z",
        "o3,2026-01-01,prospecting,300,2026-01-03T00:00:00Z",
    )
    batch(
        "b2",
        "opportunities",
        OPP,
        "o1,2026-01-01,meeting,110,2026-01-03T00:00:00Z",  # newer: wins
        "o2,2026-01-01,meeting,210,2026-01-04T00:00:00Z",  # older re-export: loses
        "o3,2026-01-01,meeting,310,2026-01-03T00:00:00Z",  # tie: later batch wins
    )
    ingest(con, landing)
    assert rows(
        con, "select opportunity_id, stage, amount, _batch_id from raw.opportunities order by 1"
    ) == [
        ("o1", "meeting", 110.0, "b2"),
        ("o2", "prospecting", 200.0, "b1"),
        ("o3", "meeting", 310.0, "b2"),
    ]


def test_supersede_holds_when_batches_arrive_in_separate_runs(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,2026-01-02T00:00:00Z")
    ingest(con, landing)
    batch("b2", "opportunities", OPP, "o1,2026-01-01,proposal,150,2026-01-09T00:00:00Z")
    report = ingest(con, landing)
    assert [r.file.relative for r in report.files] == ["b2/opportunities.csv"]
    assert report.skipped_files == ["b1/opportunities.csv"]
    assert rows(con, "select stage, amount from raw.opportunities") == [("proposal", 150.0)]
    # A later batch re-exporting an older version does not roll the row back.
    batch("b3", "opportunities", OPP, "o1,2026-01-01,meeting,120,2026-01-05T00:00:00Z")
    ingest(con, landing)
    assert rows(con, "select stage, amount, _batch_id from raw.opportunities") == [
        ("proposal", 150.0, "b2")
    ]


def test_stage_changes_accumulate_and_overlapping_reexports_dedupe(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,meeting,100,")
    batch(
        "b1",
        "stage_changes",
        SC,
        "o1,prospecting,2026-01-01T00:00:00Z",
        "o1,meeting,2026-01-03T00:00:00Z",
        "o1,meeting,2026-01-03T00:00:00Z",  # exact duplicate inside a file
    )
    batch(
        "b2",
        "stage_changes",
        SC,
        "o1,meeting,2026-01-03T00:00:00Z",  # overlap with b1
        "o1,proposal,2026-01-05T00:00:00Z",
    )
    ingest(con, landing)
    assert rows(con, "select stage, changed_at from raw.stage_changes order by changed_at") == [
        ("prospecting", datetime(2026, 1, 1)),
        ("meeting", datetime(2026, 1, 3)),
        ("proposal", datetime(2026, 1, 5)),
    ]
    log = rows(
        con,
        "select source_file, input_rows, loaded_rows, quarantined_rows, duplicate_rows "
        "from quality.ingestion_log order by 1",
    )
    # b1: 3 rows, one an exact repeat. b2: the overlapping change is identical to the
    # stored one, so it is a duplicate too; only proposal is new.
    assert log == [
        ("b1/opportunities.csv", 1, 1, 0, 0),
        ("b1/stage_changes.csv", 3, 2, 0, 1),
        ("b2/stage_changes.csv", 2, 1, 0, 1),
    ]
    assert rows(con, "select _batch_id from raw.stage_changes where stage = 'meeting'") == [("b1",)]


def test_reingesting_is_a_no_op(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,")
    batch("b1", "stage_changes", SC, "o1,prospecting,2026-01-01T00:00:00Z")
    ingest(con, landing)
    before = rows(con, "select * from raw.opportunities") + rows(
        con, "select * from raw.stage_changes"
    )
    report = ingest(con, landing)
    after = rows(con, "select * from raw.opportunities") + rows(
        con, "select * from raw.stage_changes"
    )
    assert report.files == []
    assert sorted(report.skipped_files) == ["b1/opportunities.csv", "b1/stage_changes.csv"]
    assert before == after
    assert rows(con, "select count(*) from quality.ingestion_log") == [(2,)]


def test_bad_rows_are_quarantined_with_raw_values_and_reasons(con, landing, batch):
    batch(
        "b1",
        "opportunities",
        OPP,
        "o1,2026-01-01,prospecting,100,",
        ",2026-01-02,meeting,2,",  # no id
        "o3,yesterday,meeting,abc,",  # neither created_at nor amount parse
        "o4,2026-01-03,meeting,-5,",  # negative amount
    )
    report = ingest(con, landing, quarantine_max_share=1.0)
    assert rows(con, "select opportunity_id from raw.opportunities") == [("o1",)]
    got = rows(
        con,
        "select entity, batch_id, source_file, source_row, raw_row->>'amount', failed_rules "
        "from quality.quarantine order by source_row",
    )
    assert [g[:5] for g in got] == [
        ("opportunities", "b1", "b1/opportunities.csv", 2, "2"),
        ("opportunities", "b1", "b1/opportunities.csv", 3, "abc"),
        ("opportunities", "b1", "b1/opportunities.csv", 4, "-5"),
    ]
    reasons = [json.loads(g[5]) for g in got]
    assert any("opportunity_id" in r for r in reasons[0])
    assert any("created_at" in r for r in reasons[1]) and any("amount" in r for r in reasons[1])
    assert any("amount" in r for r in reasons[2])
    # Reconciliation: 4 in = 1 loaded + 3 quarantined + 0 duplicates.
    (result,) = report.files
    assert (result.input_rows, result.loaded_rows, result.quarantined_rows) == (4, 1, 3)
    assert result.duplicate_rows == 0


def test_a_converted_rows_quarantine_names_the_users_export_file_and_line(con, landing, batch):
    """A landing file an adapter converted carries each row's export file and line (and
    the column of a row derived from one cell): the quarantine records them beside the
    converted file's source_file / source_row. A canonical file leaves them empty."""
    batch(
        "b1",
        "opportunities",
        OPP + ",_export_file,_export_line",
        "o1,2026-01-01,prospecting,100,,deals.csv,2",
        "o2,2026-01-02,meeting,lots,,deals.csv,record 3 (line 4 without multi-line values)",
    )
    batch(
        "b1",
        "stage_changes",
        SC + ",_export_file,_export_line,_export_column",
        "o1,prospecting,2026-01-01,deals.csv,2,Entered Prospecting",
        "o1,meeting,soon,deals.csv,2,Entered Meeting",
    )
    batch("b2", "opportunities", OPP, "o3,2026-01-05,prospecting,-1,")
    ingest(con, landing, quarantine_max_share=1.0)
    assert rows(
        con,
        "select source_file, source_row, export_file, export_line, export_column "
        "from quality.quarantine order by source_file",
    ) == [
        ("b1/opportunities.csv", 2, "deals.csv", "record 3 (line 4 without multi-line values)",
         None),
        ("b1/stage_changes.csv", 2, "deals.csv", "2", "Entered Meeting"),
        ("b2/opportunities.csv", 1, None, None, None),
    ]  # fmt: skip
    # raw_row still holds the converted row whole, as before.
    ((raw,),) = rows(con, "select raw_row from quality.quarantine where entity = 'stage_changes'")
    assert json.loads(raw)["_export_column"] == "Entered Meeting"


def test_an_older_quarantine_table_gets_the_export_columns(tmp_path):
    """A warehouse from before the export columns: they are added at the end, its rows
    keep their values, and the next quarantine writes all of them."""
    import duckdb

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute("CREATE SCHEMA quality")
        old.execute(
            "CREATE TABLE quality.quarantine (entity VARCHAR, batch_id VARCHAR, "
            "source_file VARCHAR, source_row BIGINT, raw_row JSON, failed_rules JSON, "
            "quarantined_at TIMESTAMP, run_id VARCHAR)"
        )
        old.execute(
            "INSERT INTO quality.quarantine VALUES ('opportunities', 'b0', "
            "'b0/opportunities.csv', 1, '{}', '[]', TIMESTAMP '2026-01-01', 'r0')"
        )
    c = connect(path)
    try:
        create_quality_tables(c)  # what every run does first (create_raw_tables)
        columns = [r[0] for r in c.execute("DESCRIBE quality.quarantine").fetchall()]
        assert columns[-4:] == ["run_id", "export_file", "export_line", "export_column"]
        assert rows(c, "select batch_id, source_row, export_file from quality.quarantine") == [
            ("b0", 1, None)
        ]
    finally:
        c.close()


def test_too_many_bad_rows_reject_the_batch_and_publish_nothing(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,")
    batch("b2", "opportunities", OPP, "o2,2026-01-01,prospecting,12,", "o3,yesterday,meeting,1,")
    report = ingest(con, landing)  # default threshold 5%: 1 bad row of 2 is 50%
    assert list(report.rejected_batches) == ["b2"]
    assert "above quality.quarantine_max_share (5.0%)" in report.rejected_batches["b2"][-1]
    assert rows(con, "select opportunity_id from raw.opportunities") == [("o1",)]
    assert rows(con, "select count(*) from quality.quarantine") == [(0,)]
    assert rows(con, "select source_file, status from quality.ingestion_log order by 1") == [
        ("b1/opportunities.csv", "published"),
        ("b2/opportunities.csv", "rejected"),
    ]


def test_rejected_batch_is_retried_and_publishes_once_fixed(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,Demo Booked,100,")
    assert list(ingest(con, landing).rejected_batches) == ["b1"]
    assert list(ingest(con, landing).rejected_batches) == ["b1"]  # still broken: retried
    fixed = StageMap(labels={"Demo Booked": "meeting"})
    assert ingest(con, landing, stage_map=fixed).rejected_batches == {}
    assert rows(con, "select stage from raw.opportunities") == [("Demo Booked",)]


def test_missing_required_column_rejects_the_batch(con, landing, batch):
    batch("b1", "opportunities", "opportunity_id,stage", "o1,prospecting")
    batch("b1", "stage_changes", SC, "o1,prospecting,2026-01-01T00:00:00Z")
    report = ingest(con, landing)
    reasons = report.rejected_batches["b1"]
    assert any("required column(s) created_at missing from the header" in r for r in reasons)
    # The batch is all or nothing: its good file is not published either.
    assert rows(con, "select count(*) from raw.stage_changes") == [(0,)]


def test_unreadable_csv_rejects_its_batch(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,1,,extra,fields")
    report = ingest(con, landing)
    assert any("opportunities.csv" in r for r in report.rejected_batches["b1"])


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"b1/deals.csv": "x\n1\n"}, "not a canonical landing file"),
        ({"stray.csv": "x\n1\n"}, "is a file at the top of the landing directory"),
        (
            {"b1/opportunities.csv": OPP + "\n", "b1/opportunities.parquet": ""},
            "holds opportunities twice",
        ),
    ],
)
def test_layout_errors(con, landing, layout, message):
    for rel, text in layout.items():
        (landing / rel).parent.mkdir(parents=True, exist_ok=True)
        (landing / rel).write_text(text)
    with pytest.raises(LandingError, match=message):
        ingest(con, landing)


def test_missing_landing_directory(con, tmp_path):
    with pytest.raises(LandingError, match="does not exist"):
        ingest(con, tmp_path / "nope")


def test_parquet_and_jsonl_batches(con, landing):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (landing / "b1").mkdir()
    pq.write_table(
        pa.table(
            {"opportunity_id": ["o1"], "created_at": ["2026-01-01T00:00:00Z"], "stage": ["meeting"]}
        ),
        landing / "b1" / "opportunities.parquet",
    )
    (landing / "b2").mkdir()
    (landing / "b2" / "stage_changes.jsonl").write_text(
        '{"opportunity_id": "o1", "stage": "meeting", "changed_at": "2026-01-01T00:00:00Z"}\n'
    )
    ingest(con, landing)
    assert rows(con, "select opportunity_id, stage from raw.opportunities") == [("o1", "meeting")]
    assert rows(con, "select count(*) from raw.stage_changes") == [(1,)]


def test_stage_map_is_written(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,1,")
    ingest(con, landing)
    assert rows(
        con,
        "select stage, stage_order, category from raw.stage_map where source_label = 'closed_won'",
    ) == [("closed_won", 6, "won")]


def test_full_export_soft_deletes_what_it_no_longer_holds(con, landing, batch):
    batch("2026-01-01T0600", "opportunities", OPP,
          "o1,2026-01-01,prospecting,100,2026-01-01", "o2,2026-01-01,prospecting,200,2026-01-01",
          "o3,2026-01-01,prospecting,300,2026-01-01")  # fmt: skip
    ingest(con, landing, full_export=True, source="crm")
    # Another source's records are not this export's to delete.
    con.execute("UPDATE raw.opportunities SET _source = 'other' WHERE opportunity_id = 'o3'")
    # The next full export lacks o2 and o3, and holds o1 with a bad amount (quarantined).
    batch("2026-01-02T0600", "opportunities", OPP, "o1,2026-01-01,prospecting,-5,2026-01-02")
    report = ingest(con, landing, full_export=True, source="crm", quarantine_max_share=1.0)
    assert rows(
        con,
        "select opportunity_id, amount, coalesce(is_deleted, false), _batch_id "
        "from raw.opportunities order by 1",
    ) == [
        ("o1", 100.0, False, "2026-01-01T0600"),  # quarantined, but still in the CRM
        ("o2", 200.0, True, "2026-01-02T0600"),  # kept, marked deleted by the later batch
        ("o3", 300.0, False, "2026-01-01T0600"),
    ]
    assert [r.deleted_rows for r in report.files] == [1]
    assert "1 missing from a full export marked deleted" in str(report)
    # An incremental export (the default) deletes nothing.
    batch("2026-01-03T0600", "opportunities", OPP, "o4,2026-01-03,prospecting,1,2026-01-03")
    ingest(con, landing, source="crm")
    assert rows(con, "select count(*) from raw.opportunities where is_deleted") == [(1,)]


def test_value_labels_map_a_crm_s_own_picklist_values(con, landing, batch):
    batch("2026-01-01T0600", "leads", "lead_id,created_at,status,channel",
          "l1,2026-01-01,Nurturing,LinkedIn  ads", "l2,2026-01-01,working,website",
          "l3,2026-01-01,Recycled,website")  # fmt: skip
    report = ingest(
        con,
        landing,
        value_labels={
            "leads.status": {"nurturing": "working"},
            "leads.channel": {"LinkedIn Ads": "paid"},
        },
        quarantine_max_share=1.0,
    )
    # Compared ignoring case and repeated spaces; an unmapped value still fails the gate.
    assert rows(con, "select lead_id, status, channel from raw.leads order by 1") == [
        ("l1", "working", "paid"),
        ("l2", "working", "website"),
    ]
    assert report.rows("leads", "quarantined_rows") == 1


QUOTA = "owner_id,month,amount,currency"


def quota_log(con) -> list[tuple]:
    return rows(
        con,
        "select source_file, input_rows, loaded_rows, quarantined_rows, duplicate_rows "
        "from quality.ingestion_log where entity = 'quotas' order by 1",
    )


def test_quotas_conflicting_versions_in_a_batch_are_all_quarantined(con, landing, batch):
    batch("b1", "users", "user_id,name", "u1,Ann", "u2,Bob")
    batch("b1", "quotas", QUOTA, "u1,2026-01-01,100,USD")
    batch(
        "b2",
        "quotas",
        QUOTA,
        "u1,2026-01-01,100,USD",  # row 1: the stored version again...
        "u1,2026-01-01,120,USD",  # row 2: ...and another one: both quarantined
        "u1,2026-01-01,120,usd",  # row 3: row 2 again (a code in any case): a duplicate
        "u2,2026-01-01,80,USD",  # row 4: no conflict: loaded
        "u2,2026-01-01,80,USD",  # row 5: exact repeat: a duplicate
    )
    report = ingest(con, landing, quarantine_max_share=1.0)
    # u1's January keeps b1's 100: neither version of b2 can be told right.
    assert rows(con, "select owner_id, amount, _batch_id from raw.quotas order by 1") == [
        ("u1", 100.0, "b1"),
        ("u2", 80.0, "b2"),
    ]
    got = rows(
        con,
        "select source_row, raw_row->>'amount', failed_rules from quality.quarantine "
        "order by source_row",
    )
    # Of rows 2 and 3 (one version), the later row is the one kept and quarantined.
    assert got == [
        (1, "100", '["quotas.key_not_conflicting"]'),
        (3, "120", '["quotas.key_not_conflicting"]'),
    ]
    # 5 in = 1 loaded (row 4) + 2 quarantined (rows 1, 3) + 2 duplicates (rows 2, 5).
    assert quota_log(con) == [("b1/quotas.csv", 1, 1, 0, 0), ("b2/quotas.csv", 5, 1, 2, 2)]
    assert report.rejected_batches == {}


def test_quotas_later_batch_supersedes_and_identical_reexport_is_a_duplicate(con, landing, batch):
    batch("b1", "users", "user_id,name", "u1,Ann")
    batch("b1", "quotas", QUOTA, "u1,2026-01-01,100,USD", "u1,2026-02-01,100,USD")
    batch("b2", "quotas", QUOTA, "u1,2026-01-01,100,USD", "u1,2026-02-01,90,EUR")
    ingest(con, landing)
    assert rows(
        con, "select month, amount, currency, _batch_id from raw.quotas order by month"
    ) == [
        (date(2026, 1, 1), 100.0, "USD", "b1"),  # identical in b2: nothing new
        (date(2026, 2, 1), 90.0, "EUR", "b2"),  # revised in b2: replaces b1's row
    ]
    assert quota_log(con) == [("b1/quotas.csv", 2, 2, 0, 0), ("b2/quotas.csv", 2, 1, 0, 1)]


def test_quotas_month_not_on_the_first_is_quarantined_and_unknown_owner_warns(con, landing, batch):
    batch("b1", "users", "user_id,name", "u1,Ann")
    batch(
        "b1",
        "quotas",
        QUOTA,
        "u1,2026-03-01T00:00:00Z,100,USD",  # a timestamp at midnight gives its date
        "u1,2026-04-15,100,USD",  # mid-month: quarantined, not moved
        "u9,2026-03-01,50,",  # no such user (yet): loaded, with a warning
        "u1,2026-05-01,-1,USD",  # negative
    )
    ingest(con, landing, quarantine_max_share=1.0)
    assert rows(con, "select owner_id, month from raw.quotas order by 1") == [
        ("u1", date(2026, 3, 1)),
        ("u9", date(2026, 3, 1)),
    ]
    assert rows(
        con, "select source_row, failed_rules from quality.quarantine order by source_row"
    ) == [(2, '["quotas.month_first_day"]'), (4, '["quotas.amount_non_negative"]')]
    assert rows(
        con,
        "select rule, severity, unexpected_count from quality.validation_results "
        "where rule = 'quotas.owner_id_exists'",
    ) == [("quotas.owner_id_exists", "warn", 1)]


def _gate_record(con) -> dict[str, list[tuple]]:
    return {
        "raw": rows(con, "select opportunity_id, stage, amount from raw.opportunities order by 1"),
        "contacts": rows(con, "select contact_id from raw.contacts order by 1"),
        "quarantine": rows(
            con,
            "select entity, source_file, source_row, failed_rules from quality.quarantine "
            "order by entity, source_row",
        ),
        "results": rows(
            con,
            "select entity, rule, success, element_count, unexpected_count, observed, message "
            "from quality.validation_results order by entity, rule",
        ),
        "log": rows(
            con,
            "select source_file, status, input_rows, loaded_rows, quarantined_rows, "
            "duplicate_rows from quality.ingestion_log order by 1",
        ),
    }


def test_a_batch_validated_in_parts_is_judged_as_if_whole(tmp_path, landing, batch, monkeypatch):
    """A batch larger than VALIDATION_PART_ROWS is validated in parts split by key: the
    gate's record is the same as with the batch in one frame, row numbers, counts, spans
    of failing values and unmapped labels included, and an e-mail shared by two contacts
    that land in different parts is still a duplicate."""
    import ingestion.loader as loader

    batch(
        "b1",
        "opportunities",
        OPP,
        "o1,2026-01-01,prospecting,100,",
        "o2,2026-01-02,Demo Booked,200,",  # unmapped label
        "o3,2026-01-03,meeting,-5,",  # negative amount
        "o4,yesterday,meeting,40,",  # created_at does not parse
        "o5,2026-01-05,meeting,-70,",  # negative amount
        "o6,2026-01-06,Demo Booked,60,",  # the same unmapped label
        "o7,2026-01-07,proposal,70,",
        "o8,2026-01-08,proposal,80,",
    )
    batch(
        "b1",
        "contacts",
        "contact_id,email",
        *[f"c{i},person{i}@example.com" for i in range(1, 9)],
        "c9,Person3@Example.com",  # person3's address again
    )
    records = {}
    for part_rows, workers in ((1_000_000, 1), (2, 1), (2, 2)):
        monkeypatch.setattr(loader, "VALIDATION_PART_ROWS", part_rows)
        with connect(tmp_path / f"w{part_rows}_{workers}.duckdb") as c:
            report = ingest(c, landing, quarantine_max_share=1.0, gate_workers=workers)
            records[part_rows, workers] = _gate_record(c)
    whole, in_parts = records[1_000_000, 1], records[2, 1]
    # The unmapped label rejects the batch: nothing published, every rule still judged.
    assert list(report.rejected_batches) == ["b1"]
    failed = {(e, r): (n, observed) for e, r, ok, _, n, observed, _ in whole["results"] if not ok}
    assert failed == {
        ("opportunities", "opportunities.stage_mapped"): (2, "1 unmapped label: Demo Booked"),
        ("opportunities", "opportunities.amount_non_negative"): (
            2,
            "failing values from -70.0 to -5.0",
        ),
        ("opportunities", "opportunities.created_at_not_null"): (1, None),
        ("opportunities", "opportunities.created_at_parses"): (1, None),
        ("contacts", "contacts.email_not_duplicated"): (2, None),
    }
    assert in_parts == whole
    # The parts on two worker processes (ingestion.hygiene.pool): the same record.
    assert records[2, 2] == whole


def test_the_gate_on_worker_processes_leaves_what_one_process_leaves(tmp_path, monkeypatch):
    """Five synthetic batches with the generator's defects, validated together with the
    large entities in several parts on two worker processes: raw, log, quarantine, every
    rule's result and message are what validating in the loader's process gives. (One
    batch alone in parts on workers: test_a_batch_validated_in_parts_is_judged_as_if_whole.)"""
    import ingestion.loader as loader
    from ingestion.hygiene.pool import ValidationPool
    from ingestion.synthetic import generate

    landing = tmp_path / "landing"
    generate(landing, opportunities=300, batches=5, end=date(2026, 11, 26))
    # Small enough that several entities of the group need several parts.
    monkeypatch.setattr(loader, "VALIDATION_PART_ROWS", 2_000)
    sent: list[int] = []
    limits: set[str] = set()
    real = ValidationPool.validate

    def counting(self, jobs, **kwargs):
        results = real(self, jobs, **kwargs)
        if self.parallel:
            sent.append(len(results))
            limits.add(setting(c))
        return results

    def setting(con) -> str:
        # A cursor of its own: the loader's connection may be mid-result.
        return con.cursor().execute("select current_setting('memory_limit')").fetchone()[0]

    monkeypatch.setattr(ValidationPool, "validate", counting)
    records = {}
    for workers in (1, 2):
        with connect(tmp_path / f"w{workers}.duckdb", memory_limit="3GiB") as c:
            ingest(
                c, landing, stage_map=StageMap(), run_id="r", gate_workers=workers,
                memory_limit="3GiB",
            )  # fmt: skip
            records[workers] = _everything(c)
            # DuckDB's cap is the configured one again, for dbt.
            assert setting(c) == "3.0 GiB"
    # The workers judged parts of several entities, and something failed on the way.
    assert len(sent) > 1 and sum(sent) > 6
    assert records[1]["quarantine"]
    assert records[2] == records[1]
    # While they ran, DuckDB's cap left them room: 3 GiB less 512 MiB for the second one.
    assert limits == {"2.5 GiB"}


def test_the_gate_on_the_spare_worker_leaves_what_one_process_leaves(tmp_path, monkeypatch):
    """A run's spare worker (started with `crm-pipeline run`, ingestion.hygiene.pool):
    five small synthetic batches with the generator's defects are validated there, and
    raw, log, quarantine, every rule's result and message are as validating in the
    loader's process leaves them. The next ingest, with nothing new, stops a spare."""
    from ingestion.hygiene import pool as pool_module
    from ingestion.synthetic import generate

    landing = tmp_path / "landing"
    generate(landing, opportunities=300, batches=5, end=date(2026, 11, 26))
    on_spare: list[bool] = []
    real = pool_module.ValidationPool.validate

    def watching(self, jobs, **kwargs):
        on_spare.append(bool(self._workers))
        return real(self, jobs, **kwargs)

    monkeypatch.setattr(pool_module.ValidationPool, "validate", watching)
    records = {}
    for spare in (False, True):
        if spare:
            pool_module.start_spare_worker()
            process = pool_module._spare.worker.process
        with connect(tmp_path / f"spare_{spare}.duckdb") as c:
            ingest(c, landing, stage_map=StageMap(), run_id="r")
            records[spare] = _everything(c)
            if spare:
                assert process.returncode is not None  # stopped with the pool
                pool_module.start_spare_worker()
                idle = pool_module._spare.worker.process
                assert ingest(c, landing, stage_map=StageMap(), run_id="r2").files == []
                assert idle.returncode is not None and pool_module._spare is None
        assert on_spare and set(on_spare) == {spare}
        on_spare.clear()
    assert records[True]["quarantine"]
    assert records[True] == records[False]


def test_a_published_file_unchanged_on_disk_is_not_read_again(con, landing, batch, monkeypatch):
    """Size and mtime as published: skipped without hashing (a daily run must not re-read
    the whole history); touched or rewritten: hashed, and loaded again only if its
    content changed."""
    import os

    import ingestion.loader as loader

    path = batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,")
    ingest(con, landing)
    hashed: list[str] = []
    real = loader.file_sha256

    def counting(p):
        hashed.append(p.name)
        return real(p)

    monkeypatch.setattr(loader, "file_sha256", counting)
    assert ingest(con, landing).skipped_files == ["b1/opportunities.csv"]
    assert hashed == []
    # Touched, same content: hashed, recognised by its content, still skipped.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ingest(con, landing).skipped_files == ["b1/opportunities.csv"]
    assert hashed == ["opportunities.csv"]
    # Rewritten (another size): hashed, and read again as a new file.
    path.write_text(path.read_text().replace("100", "1000"))
    report = ingest(con, landing)
    assert hashed == ["opportunities.csv", "opportunities.csv"]
    assert [r.file.relative for r in report.files] == ["b1/opportunities.csv"]


def _ingested_both_ways(monkeypatch, tmp_path, landing, severities):
    """The landing ingested grouped and batch by batch, each into a warehouse of its own:
    yields (grouped, open connection)."""
    import ingestion.loader as loader

    for together in (True, False):
        monkeypatch.setattr(loader, "GROUP_BATCHES", together)
        with connect(tmp_path / f"w{together}.duckdb") as c:
            ingest(c, landing, stage_map=StageMap(), run_id="r", severities=severities)
            yield together, c


def _everything(con) -> dict[str, list[tuple]]:
    """The whole record an ingestion leaves, run ids and clock times left out."""
    from ingestion.schema import ENTITIES

    got = {
        name: rows(con, f"select * exclude (_ingested_at) from raw.{name} order by all")
        for name in ENTITIES
    }
    got["quarantine"] = rows(
        con, "select * exclude (quarantined_at, run_id) from quality.quarantine order by all"
    )
    got["validation_results"] = rows(
        con,
        "select * exclude (run_id, validated_at) from quality.validation_results order by all",
    )
    got["ingestion_log"] = rows(
        con,
        "select * exclude (run_id, ingested_at, file_mtime_ns) from quality.ingestion_log "
        "order by all",
    )
    return got


def _edit(path: Path, column: str, row: int, value: str) -> None:
    """Set one cell of a landing CSV (row 1 = first data row)."""
    import csv

    with path.open(newline="") as f:
        table = list(csv.reader(f))
    table[row][table[0].index(column)] = value
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(table)


@pytest.fixture
def grouped_passes(monkeypatch) -> list[int]:
    """How many batches each grouped pass of the loader published, in order."""
    import ingestion.loader as loader

    done_per_pass: list[int] = []
    real = loader._ingest_together

    def spy(*args, **kwargs):
        results, done = real(*args, **kwargs)
        done_per_pass.append(done)
        return results, done

    monkeypatch.setattr(loader, "_ingest_together", spy)
    return done_per_pass


@pytest.mark.parametrize("defect", ["warn", "error"])
def test_batches_validated_together_match_batch_by_batch(
    tmp_path, monkeypatch, defect, grouped_passes
):
    """Five synthetic batches (updates, events, every entity) loaded in one run with one
    set-based pass per entity leave exactly what loading them batch by batch leaves: raw
    rows, log, every rule's result and message. With a WARN failure the five stay
    together; with an ERROR failure in the second (a quarantined row changes what later
    batches see) the first is published from the grouped pass, the second goes alone
    and the last three are grouped again, with the same record."""
    from ingestion.synthetic import generate

    landing = tmp_path / "landing"
    # Clean: the one ERROR failure is the one made below (a generated defect would be
    # another, and change which batches are grouped).
    generate(landing, opportunities=300, batches=5, end=date(2026, 11, 26), clean=True)
    second = sorted(p for p in landing.iterdir())[1]
    # A negative amount: an ERROR rule by default; as WARN it is published and reported.
    _edit(second / "opportunities.csv", "amount", 1, "-5")
    severities = {"opportunities.amount_non_negative": defect}
    records = {}
    for together, c in _ingested_both_ways(monkeypatch, tmp_path, landing, severities):
        records[together] = _everything(c)
    assert grouped_passes == ([5] if defect == "warn" else [1, 3])
    failed = {r[3] for r in records[False]["validation_results"] if r[7] is False}
    assert "opportunities.amount_non_negative" in failed
    assert records[True] == records[False]


def test_batches_are_grouped_up_to_a_size_and_a_large_one_goes_alone(monkeypatch):
    import ingestion.loader as loader

    class Stat:
        def __init__(self, size: int) -> None:
            self.st_size = size

    monkeypatch.setattr(loader, "GROUP_MAX_BYTES", 100)
    sizes = [("b1", 500), ("b2", 40), ("b3", 50), ("b4", 30), ("b5", 100), ("b6", 1)]
    batches = [(name, [(None, "", Stat(size))]) for name, size in sizes]
    groups = [[name for name, _ in g] for g in loader._groups(batches)]
    # b1 is larger than the limit: alone; b2+b3 = 90, b4 would make 120; b5 fills a group.
    assert groups == [["b1"], ["b2", "b3"], ["b4"], ["b5"], ["b6"]]


def _append(path: Path, *rows: dict[str, str]) -> None:
    """Add rows to a landing CSV, by column name (others empty)."""
    import csv

    with path.open(newline="") as f:
        header = next(csv.reader(f))
    with path.open("a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(
            [[row.get(c, "") for c in header] for row in rows]
        )


def _row(path: Path, column: str, value: str) -> dict[str, str]:
    import csv

    with path.open(newline="") as f:
        return next(r for r in csv.DictReader(f) if r[column] == value)


def test_grouped_batches_see_each_other_as_batch_by_batch_does(
    tmp_path, monkeypatch, grouped_passes
):
    """The cases where a batch's fate depends on the earlier batches of the same run,
    in one grouped pass and batch by batch, with identical records:
    - an opportunity updated in the 2nd batch, re-exported unchanged in the 3rd (a
      duplicate) and with an older updated_at in the 4th (a duplicate too), and two
      versions of one key in one file (the later row wins);
    - a stage change in the 2nd batch for an opportunity that only arrives in the 3rd
      (unknown there, made a WARN), and one in the 3rd that sees it (its creation time
      from the same batch);
    - an e-mail handed from one contact to another in the 2nd batch, then taken again
      in the 3rd and the 4th (seen before or not, by the versions current then);
    - an activity repeated unchanged (a duplicate) and one changed (replaces)."""
    from ingestion.synthetic import generate

    landing = tmp_path / "landing"
    generate(landing, opportunities=100, batches=4, end=date(2026, 11, 26), clean=True)
    b1, b2, b3, b4 = sorted(landing.iterdir())
    opp = _row(b1 / "opportunities.csv", "opportunity_id", "OPP-00000001")
    updated = {**opp, "amount": "5000", "updated_at": "2026-11-24T00:00:00Z"}
    _append(b2 / "opportunities.csv", updated)
    new = {**opp, "opportunity_id": "OPP-NEW", "created_at": "2026-11-24T01:00:00Z"}
    new |= {"updated_at": "2026-11-24T01:00:00Z", "stage": "prospecting", "is_closed": "false"}
    new |= {"is_won": "false", "lost_reason": "", "close_date": "2026-12-20"}
    _append(b3 / "opportunities.csv", updated, new)
    second = _row(b1 / "opportunities.csv", "opportunity_id", "OPP-00000002")
    late = "2026-11-25T00:00:00Z"
    _append(
        b4 / "opportunities.csv",
        {**opp, "amount": "1", "updated_at": "2025-01-01T00:00:00Z"},
        {**second, "amount": "7000", "updated_at": late},
        {**second, "amount": "8000", "updated_at": late},
    )
    change = {"opportunity_id": "OPP-NEW", "stage": "qualification", "amount": "4300"}
    _append(
        b2 / "stage_changes.csv",
        {**change, "changed_at": "2026-11-24T02:00:00Z", "change_id": "SC-EARLY"},
    )
    _append(
        b3 / "stage_changes.csv",
        {**change, "changed_at": "2026-11-24T03:00:00Z", "change_id": "SC-SEEN"},
    )
    first = _row(b1 / "contacts.csv", "contact_id", "CON-00000001")
    other = _row(b1 / "contacts.csv", "contact_id", "CON-00000002")
    day2 = {"updated_at": "2026-11-24T00:00:00Z"}
    _append(
        b2 / "contacts.csv",
        {**first, **day2, "email": "moved@example.com"},
        {**other, **day2, "email": first["email"]},
    )
    _append(b3 / "contacts.csv", {**first, "contact_id": "CON-TAKES-OLD", **day2})
    _append(
        b4 / "contacts.csv",
        {**first, "contact_id": "CON-TAKES-NEW", **day2, "email": "moved@example.com"},
    )
    act = _row(b1 / "activities.csv", "activity_id", "ACT-0000000001")
    act2 = _row(b1 / "activities.csv", "activity_id", "ACT-0000000002")
    _append(b3 / "activities.csv", act, {**act2, "subject": "Changed subject"})
    severities = {"stage_changes.opportunity_id_exists": "warn"}

    records = {}
    for together, c in _ingested_both_ways(monkeypatch, tmp_path, landing, severities):
        records[together] = _everything(c)
        opp1 = rows(
            c,
            "select amount, _batch_id from raw.opportunities where opportunity_id = 'OPP-00000001'",
        )
        opp2 = rows(c, "select amount from raw.opportunities where opportunity_id = 'OPP-00000002'")
        subject = rows(c, "select subject from raw.activities where activity_id = 'ACT-0000000002'")
        seen = rows(
            c,
            "select source_file, unexpected_count from quality.validation_results "
            "where rule = 'contacts.email_not_duplicated' and not success order by 1",
        )
        unknown = rows(
            c,
            "select source_file from quality.validation_results "
            "where rule = 'stage_changes.opportunity_id_exists' and not success",
        )
        # Known answers, by hand: the updated amount stays (later copies are older or
        # the same), the later row of the file wins, the changed activity replaces.
        assert opp1 == [(5000.0, b2.name)]
        assert opp2 == [(8000.0,)]
        assert subject == [("Changed subject",)]
        # Day 2: CON-00000002 takes an e-mail CON-00000001 still holds in raw; day 3 the
        # old e-mail is CON-00000002's; day 4 the new one is CON-00000001's.
        later = [(f.split("/")[0], n) for f, n in seen if not f.startswith(b1.name)]
        assert later == [(b2.name, 1), (b3.name, 1), (b4.name, 1)]
        assert unknown == [(f"{b2.name}/stage_changes.csv",)]
    assert grouped_passes == [4]
    assert records[True] == records[False]
