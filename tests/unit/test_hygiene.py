"""The Great Expectations opportunities suite, on small frames with known failures."""

from __future__ import annotations

import pandas as pd

from ingestion.hygiene import validate_opportunities
from ingestion.stages import StageMap


def outcome(result, expectation: str):
    (o,) = [o for o in result.outcomes if o.expectation == expectation]
    return o


def test_clean_frame_passes():
    frame = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2"],
            "amount": [0.0, None],
            "stage": ["Closed_Won", " prospecting "],
        }
    )
    result = validate_opportunities(frame, StageMap().label_map())
    assert result.success
    assert len(result.outcomes) == 4


def test_each_expectation_fails_on_its_defect():
    frame = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o1", None, "o4"],
            "amount": [10.0, -5.0, 1.0, -0.01],
            "stage": ["meeting", "Demo Booked", "Demo Booked", "Nurture"],
        }
    )
    result = validate_opportunities(frame, StageMap().label_map())
    assert not result.success
    nulls = outcome(result, "expect_column_values_to_not_be_null")
    assert (nulls.success, nulls.unexpected_count) == (False, 1)
    unique = outcome(result, "expect_column_values_to_be_unique")
    assert (unique.success, unique.unexpected_count) == (False, 2)
    amount = outcome(result, "expect_column_values_to_be_between")
    assert (amount.success, amount.unexpected_count) == (False, 2)
    assert sorted(amount.unexpected_examples) == [-5.0, -0.01]
    stages = outcome(result, "expect_column_values_to_be_in_set")
    assert (stages.success, stages.unexpected_count) == (False, 3)
    assert stages.unexpected_examples == ("Demo Booked", "Nurture")  # as the CRM wrote them
    assert "stage_labels" in stages.describe()


def test_configured_label_makes_the_stage_check_pass():
    frame = pd.DataFrame({"opportunity_id": ["o1"], "amount": [1.0], "stage": ["Demo Booked"]})
    assert validate_opportunities(
        frame, StageMap(labels={"demo booked": "meeting"}).label_map()
    ).success
