"""Progress of long steps when stderr is not a terminal: a line when a step starts, one when it ends."""

from __future__ import annotations

import re

from sandbox.cache.progress import progress_bar


def test_piped_progress_prints_a_start_and_an_end_line_with_times(capsys):
    with progress_bar("task: strong features (enc)", 3) as advance:
        advance(3)
    with progress_bar("hidden step", 2, enabled=False) as advance:
        advance(2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "aar: task: strong features (enc) (3) ..."
    assert re.fullmatch(r"aar: task: strong features \(enc\) done in \d+\.\ds \(in-process CPU \d+\.\ds\)", lines[1])
    assert len(lines) == 2
