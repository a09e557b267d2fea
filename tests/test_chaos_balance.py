"""The fault suite's balance (chaos/harness.py): lost, duplicates and what no crash explains."""

from __future__ import annotations

from collections import Counter

from chaos.harness import take_balance


def test_every_offered_case_delivered_once_balances() -> None:
    balance = take_balance(
        "x", {"a", "b"}, Counter({"a": 1, "b": 1}), quarantined=0, dlq=0, crashed=False
    )
    assert (balance.delivered, balance.lost, balance.duplicates, balance.unexplained) == (
        2,
        0,
        0,
        0,
    )
    assert balance.ok
    assert "offered=2 delivered=2 quarantined=0 dlq=0 duplicates=0 lost=0" in balance.line()


def test_a_case_neither_delivered_nor_parked_is_lost() -> None:
    balance = take_balance(
        "x", {"a", "b", "c"}, Counter({"a": 1}), quarantined=1, dlq=0, crashed=True
    )
    assert balance.lost == 1
    assert not balance.ok
    assert "FAIL" in balance.line()


def test_quarantine_and_dlq_account_for_undelivered_cases() -> None:
    balance = take_balance(
        "x", {"a", "b", "c"}, Counter({"a": 1}), quarantined=1, dlq=1, crashed=False
    )
    assert (balance.lost, balance.ok) == (0, True)


def test_repeats_after_a_crash_are_duplicates_without_one_they_are_unexplained() -> None:
    seen = Counter({"a": 3, "b": 1})
    after_crash = take_balance("x", {"a", "b"}, seen, quarantined=0, dlq=0, crashed=True)
    assert (after_crash.duplicates, after_crash.unexplained, after_crash.ok) == (2, 0, True)
    no_crash = take_balance("x", {"a", "b"}, seen, quarantined=0, dlq=0, crashed=False)
    assert (no_crash.duplicates, no_crash.unexplained, no_crash.ok) == (0, 2, False)


def test_a_case_nobody_submitted_or_two_keys_for_one_case_are_unexplained() -> None:
    stranger = take_balance(
        "x", {"a"}, Counter({"a": 1, "z": 1}), quarantined=0, dlq=0, crashed=True
    )
    assert (stranger.unexplained, stranger.ok) == (1, False)
    two_keys = take_balance(
        "x", {"a"}, Counter({"a": 2}), quarantined=0, dlq=0, crashed=True, two_keys=1
    )
    assert (two_keys.unexplained, two_keys.ok) == (1, False)
