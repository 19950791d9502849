"""Which dbt errors a step retry can cure: real messages dbt printed here."""

from __future__ import annotations

import pytest

from orchestration.defs.transform.assets import first_line, is_transient_dbt_error

LOCKED = (
    'IO Error: Could not set lock on file "/tmp/syn/wh.duckdb": Conflicting lock is held in '
    "/usr/bin/python3.11 (PID 7296). See also https://duckdb.org/docs/current/connect/concurrency"
)
UNIT_TEST_REF = (
    "Parsing Error in unit_test daily_snapshot (models/marts/_marts__unit_tests.yml)\n"
    "  Unit test 'daily_snapshot' had an input (ref('int_no_such_model')) which was not "
    "found in the manifest."
)
CONTRACT = (
    "Compilation Error in model fct_forecast (models/marts/fct_forecast.sql)\n"
    "  This model has an enforced contract, and its 'columns' specification is missing"
)
BINDER = 'Binder Error: Referenced column "amount" not found in FROM clause!'


@pytest.mark.parametrize(
    ("message", "transient"),
    [(LOCKED, True), (UNIT_TEST_REF, False), (CONTRACT, False), (BINDER, False), (None, False)],
)
def test_only_io_errors_are_worth_a_retry(message, transient):
    assert is_transient_dbt_error(message) is transient


def test_first_line_of_a_dbt_message():
    assert first_line(UNIT_TEST_REF) == (
        "Parsing Error in unit_test daily_snapshot (models/marts/_marts__unit_tests.yml)"
    )
    assert first_line("\n  \n") == "no message"
    assert first_line(None) == "no message"
