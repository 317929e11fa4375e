"""The report's two processes (interfere.report.processes): both results come back; a second process that raises,
dies or is left behind by a parent that raises ends in one clear error, never a hang."""

import os
import signal
import time

import pytest

from interfere.errors import UserError
from interfere.report.processes import Split, run_split


def _split(here, there):
    return Split(here=here, there=there, threads_here=1, threads_there=1)


def test_both_results_come_back_and_each_side_ran_in_its_own_process():
    parent = os.getpid()
    first, rest = run_split(_split(lambda: {"pid": os.getpid()}, lambda: {"pid": os.getpid()}))
    assert first["pid"] == parent and rest["pid"] not in (parent, None)


def test_a_second_process_that_raises_a_bug_raises_it_here_with_its_traceback():
    def broken():
        raise ValueError("boom in the second process")

    with pytest.raises(RuntimeError, match="second process failed: ValueError: boom") as err:
        run_split(_split(lambda: {}, broken))
    assert "Traceback" in str(err.value) and "broken" in str(err.value)


def test_a_user_error_in_the_second_process_stays_one_line():
    def refuses():
        raise UserError("control run x has another board size")

    with pytest.raises(UserError, match="^control run x has another board size$"):
        run_split(_split(lambda: {}, refuses))


def test_a_second_process_that_dies_is_reported_not_waited_for():
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"second process died \(exit code -9\)"):
        run_split(_split(lambda: {}, lambda: os.kill(os.getpid(), signal.SIGKILL)))
    assert time.monotonic() - t0 < 30


def test_a_parent_that_raises_stops_its_child():
    marker = {}

    def here():
        raise KeyError("the first seed failed")

    def there():
        time.sleep(60)  # would hold the report for a minute if the parent waited for it
        return marker

    t0 = time.monotonic()
    with pytest.raises(KeyError, match="the first seed failed"):
        run_split(_split(here, there))
    assert time.monotonic() - t0 < 30
