"""Request ids: unique within a process, with a prefix of their own in each process."""

from __future__ import annotations

import re

from service.api.observability import _RequestIds


def test_request_ids_are_unique_hex_of_uuid_length():
    ids = _RequestIds()
    seen = [ids.next() for _ in range(10_000)]
    assert len(set(seen)) == len(seen)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in seen)


def test_each_process_gets_its_own_prefix():
    # reset() is what a forked worker runs (os.register_at_fork); a spawned one builds anew.
    ids = _RequestIds()
    first = ids.next()
    ids.reset()
    second = ids.next()
    assert first[:20] != second[:20]
    assert _RequestIds().next()[:20] not in (first[:20], second[:20])
