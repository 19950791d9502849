"""Conversion notes grouped across batches and cut to a readable length."""

from __future__ import annotations

from ingestion.sources.notes import MAX_NOTE_CHARS, group_notes


def test_the_same_note_over_many_batches_prints_once_with_the_batch_count():
    notes = [f"pipedrive 2026-01-{d:02d}: no organizations file" for d in (3, 1, 2)]
    notes.append("pipedrive 2026-01-02: 2 deals without a stage")
    notes.append("hubspot 2026-01-01: no organizations file")
    assert group_notes(notes) == [
        "pipedrive: no organizations file (in 3 batches, 2026-01-01 to 2026-01-03)",
        "pipedrive 2026-01-02: 2 deals without a stage",
        "hubspot 2026-01-01: no organizations file",
    ]


def test_a_long_list_of_notes_is_cut_with_a_count():
    notes = [f"mapping 2026-01-01: unknown column c{i}" for i in range(3386)]
    lines = group_notes(notes, max_lines=20)
    assert len(lines) == 21
    assert lines[-1] == "… and 3,366 more distinct notes in the batches' notes files"


def test_a_long_note_is_cut_with_a_count():
    (line,) = group_notes(["salesforce b1: " + "x" * (MAX_NOTE_CHARS + 1234)])
    assert line == (
        "salesforce b1: "
        + "x" * MAX_NOTE_CHARS
        + "… (1,234 more characters in the batch's notes file)"
    )
