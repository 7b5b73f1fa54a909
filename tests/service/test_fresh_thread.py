"""run_on_fresh_thread: the result or the error of a function run on a thread that ends."""

from __future__ import annotations

import threading

import pytest

from service.fresh_thread import run_on_fresh_thread


def test_returns_the_result_from_a_thread_that_has_ended():
    ran_on: list[threading.Thread] = []

    def work() -> int:
        ran_on.append(threading.current_thread())
        return 42

    assert run_on_fresh_thread(work) == 42
    assert ran_on[0] is not threading.current_thread()
    assert not ran_on[0].is_alive()


def test_raises_the_function_s_own_error():
    def fail() -> None:
        raise ValueError("broken bundle")

    with pytest.raises(ValueError, match="broken bundle"):
        run_on_fresh_thread(fail)


def test_a_none_result_is_a_result():
    assert run_on_fresh_thread(lambda: None) is None
