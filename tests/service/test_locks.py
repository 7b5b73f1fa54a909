"""The inter-process locks: a claim fails at once while held and leaves no file behind; an
exclusive lock makes a second holder wait. ``flock`` locks belong to an open file, so two
holders in one process exclude each other as two processes would."""

from __future__ import annotations

import threading
import time

import pytest

from service.locks import claim, exclusive_lock


class Busy(Exception):
    pass


def test_claim_refuses_a_second_holder_and_removes_its_file(tmp_path):
    lock = tmp_path / "x.lock"
    with claim(lock, Busy):
        assert lock.is_file()
        with pytest.raises(Busy), claim(lock, Busy):
            pass  # pragma: no cover - never entered
    assert not lock.exists()
    with claim(lock, Busy):  # free again
        pass


def test_claim_releases_when_the_block_raises(tmp_path):
    lock = tmp_path / "x.lock"
    with pytest.raises(RuntimeError), claim(lock, Busy):
        raise RuntimeError("boom")
    assert not lock.exists()
    with claim(lock, Busy):
        pass


def test_claim_makes_its_folder_only_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError), claim(tmp_path / "missing" / "x.lock", Busy):
        pass  # pragma: no cover
    with claim(tmp_path / "made" / "x.lock", Busy, make_parent=True):
        assert (tmp_path / "made" / "x.lock").is_file()


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_exclusive_lock_makes_the_second_holder_wait(tmp_path, kind):
    target = tmp_path / "guard.lock" if kind == "file" else tmp_path
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with exclusive_lock(target):
            held.set()
            time.sleep(0.3)
            order.append("first released")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(5)
    with exclusive_lock(target):
        order.append("second held")
    thread.join()
    assert order == ["first released", "second held"]
    if kind == "file":
        assert target.is_file()  # a lasting lock file is never removed
