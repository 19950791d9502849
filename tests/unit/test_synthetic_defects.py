"""The synthetic generator's defective rows (ingestion/synthetic/defects.py): how many of
each kind land in which batch, worked out by hand from the clean landing's row counts;
that they are extra rows beside exactly the clean landing's; that the hygiene gate
quarantines exactly them, each under its one rule, and publishes everything else as from
the clean landing; and that ``clean=True`` (``generate --clean``, ``synthetic.clean``)
writes none."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from ingestion.config import load_config
from ingestion.errors import ConfigError
from ingestion.landing.layout import prepare_landing
from ingestion.loader import ingest
from ingestion.synthetic import WRITTEN_ENTITIES, generate
from ingestion.synthetic.defects import _due
from ingestion.warehouse import connect
from orchestration.cli import main

END = dt.date(2026, 11, 26)
SMALL = {"opportunities": 2000, "batches": 3, "seed": 7, "end": END}
BATCHES = ("2026-11-24T0600", "2026-11-25T0600", "2026-11-26T0600")

TYPE = "activities.activity_type_in_value_set"
NO_DATE = "activities.occurred_at_not_null"
NO_ID = "leads.lead_id_not_null"
STATUS = "leads.status_in_value_set"


def _kind(entity: str, row: dict[str, str]) -> str | None:
    """The rule a landing row was broken for, read from its values; None for a clean row."""
    if entity == "activities":
        if row["activity_type"] == "LinkedIn InMail":
            return TYPE
        if row["occurred_at"] == "":
            return NO_DATE
    if entity == "leads":
        if row["lead_id"] == "":
            return NO_ID
        if row["status"] == "Nurturing":
            return STATUS
    return None


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _defects(landing: Path) -> list[tuple[str, str, int, str]]:
    """(entity, landing file, 1-based data row, rule) of every defective row."""
    return [
        (entity, f"{batch.name}/{entity}.csv", n, kind)
        for batch in sorted(landing.iterdir())
        for entity in ("activities", "leads")
        for n, row in enumerate(_rows(batch / f"{entity}.csv"), start=1)
        if (kind := _kind(entity, row)) is not None
    ]


def _per_batch(defects: list[tuple[str, str, int, str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for _entity, file, _row, rule in defects:
        key = (file.split("/")[0], rule)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _clean_counts(landing: Path, entity: str) -> list[int]:
    return [len(_rows(b / f"{entity}.csv")) for b in sorted(landing.iterdir())]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("defects")
    return {
        "dirty": generate(root / "dirty", **SMALL).out_dir,
        "clean": generate(root / "clean", **SMALL, clean=True).out_dir,
    }


def test_due_defects_by_hand():
    # One per 2,000 rows written so far: none before the 2,000th, four in 8,724 rows.
    assert _due(0, 1_999, 0) == 0
    assert _due(0, 2_000, 0) == 1
    assert _due(0, 8_724, 0) == 4
    # Later files count on: 8,724 + 9 rows hold no new multiple of 2,000; 3,990 + 120 do.
    assert _due(8_724, 9, 4) == 0
    assert _due(3_990, 120, 1) == 1
    # At most one per 100 rows of the file: the one due in a 50-row file waits, and the
    # next file of 300 rows (4,040 + 300 = 4,340, two due, one made) takes it.
    assert _due(3_990, 50, 1) == 0
    assert _due(4_040, 300, 1) == 1
    # 10,000 rows after 9,900 make five due, but 300 rows hold three.
    assert _due(9_900, 300, 0) == 3


def test_small_landing_holds_the_defects_worked_out_by_hand(small: dict[str, Path]):
    clean, dirty = small["clean"], small["dirty"]
    # The premises, from the clean landing: leads 5,203 + 11 + 21 and activities
    # 17,576 + 29 + 25 rows per batch.
    assert _clean_counts(clean, "leads") == [5_203, 11, 21]
    assert _clean_counts(clean, "activities") == [17_576, 29, 25]
    # Leads: 5,203 // 2,000 = 2 in the full export (kinds alternate: no id, then the
    # custom status); 5,214 and 5,235 rows reach no 3rd multiple. Activities: 17,576 //
    # 2,000 = 8 (4 custom types, 4 without a date); 17,605 and 17,630 reach no 9th.
    assert _per_batch(_defects(dirty)) == {
        (BATCHES[0], NO_ID): 1,
        (BATCHES[0], STATUS): 1,
        (BATCHES[0], TYPE): 4,
        (BATCHES[0], NO_DATE): 4,
    }
    assert _defects(clean) == []


def test_defects_are_extra_rows_beside_the_clean_ones(small: dict[str, Path]):
    clean, dirty = small["clean"], small["dirty"]
    for batch in BATCHES:
        for entity in WRITTEN_ENTITIES:
            name = f"{batch}/{entity}.csv"
            if entity not in ("activities", "leads"):
                assert (dirty / name).read_bytes() == (clean / name).read_bytes(), name
                continue
            kept = [r for r in _rows(dirty / name) if _kind(entity, r) is None]
            assert kept == _rows(clean / name), name
    # Each keeps the id of no clean row: a fresh one, or none for the lead without an id.
    ids = {r["activity_id"] for b in BATCHES for r in _rows(clean / b / "activities.csv")}
    ids |= {r["lead_id"] for b in BATCHES for r in _rows(clean / b / "leads.csv")}
    for entity, file, n, rule in _defects(dirty):
        row = _rows(dirty / file)[n - 1]
        key = row["activity_id" if entity == "activities" else "lead_id"]
        assert (key == "") == (rule == NO_ID)
        assert key not in ids


def test_the_gate_quarantines_exactly_the_defects_and_publishes_the_rest(
    small: dict[str, Path], tmp_path: Path
):
    published = {}
    for name, landing in small.items():
        with connect(tmp_path / f"{name}.duckdb") as con:
            ingest(con, landing, run_id=name)
            quarantined = con.execute(
                "select entity, source_file, source_row, failed_rules from quality.quarantine "
                "order by all"
            ).fetchall()
            statuses = con.execute("select distinct status from quality.ingestion_log").fetchall()
            assert statuses == [("published",)], name
            published[name] = {
                entity: con.execute(
                    f"select * exclude (_source_row, _ingested_at) from raw.{entity} order by all"
                ).fetchall()
                for entity in WRITTEN_ENTITIES
            }
        expected = sorted(
            (entity, file, n, json.dumps([rule])) for entity, file, n, rule in _defects(landing)
        )
        got = [(e, f, n, json.dumps(json.loads(rules))) for e, f, n, rules in quarantined]
        assert got == expected, name
    assert len(_defects(small["dirty"])) == 10
    # Every published row is the same with or without the defects.
    assert published["dirty"] == published["clean"]


def test_defects_spread_over_the_batches_in_proportion_to_their_rows(tmp_path: Path):
    args = {"opportunities": 20_000, "batches": 8, "seed": 7, "end": END}
    clean = generate(tmp_path / "clean", **args, clean=True).out_dir
    dirty = generate(tmp_path / "dirty", **args)
    assert _clean_counts(clean, "leads") == [51_704, 191, 176, 185, 179, 184, 166, 164]
    assert _clean_counts(clean, "activities") == [
        179_707, 326, 313, 331, 330, 327, 321, 317
    ]  # fmt: skip
    # Leads: 51,704 // 2,000 = 25 in the full export (13 without an id, 12 with the custom
    # status); 51,895 rows reach no 26th multiple, 52,071 in the third batch do (176 rows
    # hold one): the 26th defect, the second kind. Activities: 179,707 // 2,000 = 89 (45
    # custom types, 44 without a date); 180,033 in the second batch reach the 90th (a
    # second kind); 181,972 at the end reach no 91st.
    batches = sorted(p.name for p in dirty.out_dir.iterdir())
    assert _per_batch(_defects(dirty.out_dir)) == {
        (batches[0], NO_ID): 13,
        (batches[0], STATUS): 12,
        (batches[2], STATUS): 1,
        (batches[0], TYPE): 45,
        (batches[0], NO_DATE): 44,
        (batches[1], NO_DATE): 1,
    }
    assert dirty.defects == {TYPE: 45, NO_DATE: 45, NO_ID: 13, STATUS: 13}
    # A defect is at most 1% of a file (quality.quarantine_max_share is 5% by default).
    share = max(
        sum(1 for d in _defects(dirty.out_dir) if d[1] == f"{b}/{e}.csv")
        / len(_rows(dirty.out_dir / b / f"{e}.csv"))
        for b in batches
        for e in ("leads", "activities")
    )
    assert 0 < share <= 0.01


def test_generate_clean_writes_none_and_says_so(tmp_path: Path):
    printed = {}
    for flags in ((), ("--clean",)):
        out = io.StringIO()
        argv = ["generate", "--out", str(tmp_path / f"out{len(flags)}"), "--opportunities",
                "2000", "--batches", "3", "--seed", "7", "--end", END.isoformat(),
                *flags]  # fmt: skip
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0
        printed[flags] = out.getvalue()
        assert len(_defects(tmp_path / f"out{len(flags)}")) == (0 if flags else 10)
    tail = f"(4 {TYPE}, 4 {NO_DATE}, 1 {NO_ID}, 1 {STATUS})"
    assert (
        printed[()]
        .rstrip()
        .endswith(f"; 10 of them defective, for the hygiene gate to quarantine {tail}")
    )
    assert "defective" not in printed[("--clean",)]


def test_synthetic_clean_in_the_config_generates_a_clean_demo(tmp_path: Path):
    config = tmp_path / "crm.yaml"
    for clean, defects in ((False, 10), (True, 0)):
        landing = tmp_path / f"landing{clean}"
        settings = f"opportunities: 2000, batches: 3, seed: 7, clean: {str(clean).lower()}"
        config.write_text(f"landing_dir: {landing}\nsynthetic: {{{settings}}}\n")
        cfg = load_config(config)
        assert cfg.synthetic.clean is clean
        prepare_landing(cfg, end=END)
        assert len(_defects(landing)) == defects
    config.write_text("synthetic: {clean: sometimes}\n")
    with pytest.raises(ConfigError, match=r"synthetic\.clean must be a bool"):
        load_config(config)
