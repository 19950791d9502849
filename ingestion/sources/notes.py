"""Conversion notes as the user reads them: one line per distinct note, not per batch.

A daily export that lacks an object says so in every batch; a first load of a year of
batches would print the same line hundreds of times and bury what differs. Notes are
grouped by source and text, with the batches they came from counted, and the whole list
and any single note are cut to a readable length with a count of what was left out (every
note stays in full in the batch's notes file beside the converted batch).
"""

from __future__ import annotations

import re

# "<source> <batch>: <note>", as convert_landing returns them.
_NOTE = re.compile(r"^(?P<source>\S+) (?P<batch>\S+): (?P<text>.*)$", re.DOTALL)
MAX_LINES = 20
MAX_NOTE_CHARS = 400


def group_notes(notes: list[str], max_lines: int = MAX_LINES) -> list[str]:
    """One line per (source, note text), naming the batch or counting the batches."""
    groups: dict[tuple[str, str], list[str]] = {}
    for note in notes:
        match = _NOTE.match(note)
        source, batch, text = match.group("source", "batch", "text") if match else ("", "", note)
        groups.setdefault((source, text), []).append(batch)
    lines = []
    for (source, text), batches in groups.items():
        if len(text) > MAX_NOTE_CHARS:
            cut = len(text) - MAX_NOTE_CHARS
            text = f"{text[:MAX_NOTE_CHARS]}… ({cut:,} more characters in the batch's notes file)"
        if not source:
            lines.append(text)
        elif len(batches) == 1:
            lines.append(f"{source} {batches[0]}: {text}")
        else:
            ordered = sorted(batches)
            lines.append(
                f"{source}: {text} (in {len(batches):,} batches, {ordered[0]} to {ordered[-1]})"
            )
    if len(lines) > max_lines:
        left = len(lines) - max_lines
        lines = [
            *lines[:max_lines],
            f"… and {left:,} more distinct notes in the batches' notes files",
        ]
    return lines
