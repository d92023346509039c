"""The aggregates' run-time CLI: its day ranges and argument errors (runs are on the emulator)."""

from __future__ import annotations

from datetime import date

import pytest

from tools.aggregates import day_range, main


def test_day_ranges():
    assert day_range("2026-01-30", "2026-02-01") == [date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1)]
    assert day_range("2026-01-30", None) == [date(2026, 1, 30)]
    with pytest.raises(ValueError, match="on or after"):
        day_range("2026-01-02", "2026-01-01")


def test_a_backwards_range_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rebuild", "--from", "2026-01-02", "--to", "2026-01-01"])
    assert exit_.value.code == 2 and "--to must be on or after --from" in capsys.readouterr().err
