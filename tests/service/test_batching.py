"""The micro-batcher: grouping, order, back-pressure, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.batching import MicroBatcher, QueueFull


class SlowModel:
    """Echoes each text back; records the size of every call; can be held to fill the queue."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, texts, langs):
        self.gate.wait(5)
        time.sleep(self.delay)
        self.calls.append(len(texts))
        if "boom" in texts:
            raise ValueError("model failed")
        return [f"{t}|{lang}" for t, lang in zip(texts, langs, strict=True)]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_a_model_call_and_keep_their_order():
    model = SlowModel()
    batcher = MicroBatcher(model, max_items=64, max_wait_s=0.05)
    batcher.start()

    async def main():
        return await asyncio.gather(
            *(batcher.submit([f"r{k}-a", f"r{k}-b"], ["en", None]) for k in range(5))
        )

    results = run(main())
    batcher.stop()
    assert results == [[f"r{k}-a|en", f"r{k}-b|None"] for k in range(5)]
    assert sum(model.calls) == 10 and len(model.calls) < 5  # grouped
    assert max(model.calls) <= 64


def test_max_items_caps_a_batch_but_never_splits_a_request():
    model = SlowModel()
    batcher = MicroBatcher(model, max_items=4, max_wait_s=0.05)
    batcher.start()

    async def main():
        return await asyncio.gather(*(batcher.submit(["x"] * 3) for _ in range(4)))

    results = run(main())
    batcher.stop()
    assert all(len(r) == 3 for r in results)
    assert all(n == 3 for n in model.calls)  # 3 + 3 > 4, so one request per call


def test_full_queue_refuses_with_retry_after_then_recovers():
    model = SlowModel()
    model.gate.clear()  # hold the worker so the queue fills up
    batcher = MicroBatcher(model, max_items=2, max_wait_s=0.0, queue_max_items=6)
    batcher.start()

    async def main():
        first = asyncio.ensure_future(batcher.submit(["a", "b"]))
        await asyncio.sleep(0.05)  # the worker takes the first request and blocks on the gate
        queued = [asyncio.ensure_future(batcher.submit(["c", "d"])) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit(["e"])
        assert refused.value.retry_after >= 1
        model.gate.set()
        await asyncio.gather(first, *queued)
        return await batcher.submit(["later"])

    assert run(main()) == ["later|None"]
    batcher.stop()


@pytest.mark.parametrize("bound_s", [0.05, 0.0])
def test_time_bound_refuses_before_the_item_bound_when_on(bound_s):
    """Overload is shed by expected wait (queued texts / measured rate), not only by count."""
    model = SlowModel()
    model.gate.clear()
    batcher = MicroBatcher(
        model, max_items=2, max_wait_s=0.0, queue_max_items=1000, queue_max_wait_s=bound_s
    )
    batcher.start()

    async def main():
        first = asyncio.ensure_future(batcher.submit(["a", "b"]))
        await asyncio.sleep(0.05)
        # 2 texts in the model at the 50 texts/s prior: 0.04 s of work, under the 0.05 s bound.
        second = asyncio.ensure_future(batcher.submit(["c", "d"]))
        await asyncio.sleep(0.05)
        third = asyncio.ensure_future(batcher.submit(["e"]))  # 4 texts ahead: 0.08 s
        await asyncio.sleep(0.05)
        refused = third.done() and isinstance(third.exception(), QueueFull)
        model.gate.set()
        await asyncio.gather(first, second)
        if not refused:
            await third
        return refused, await batcher.submit(["later"])

    refused, later = run(main())
    batcher.stop()
    assert refused is (bound_s > 0)
    assert later == ["later|None"]


def test_a_panic_in_the_model_is_an_error_not_a_dead_worker():
    """pyo3's PanicException (tokenizers' Rust panics) derives from BaseException only."""

    class Panic(BaseException):
        pass

    calls = []

    def predict(texts, langs):
        calls.append(texts)
        if len(calls) == 1:
            raise Panic("index out of bounds")
        return [f"{t}|{lang}" for t, lang in zip(texts, langs, strict=True)]

    batcher = MicroBatcher(predict, max_items=8, max_wait_s=0.0)
    batcher.start()

    async def main():
        with pytest.raises(RuntimeError, match="model call failed"):
            await batcher.submit(["boom"])
        return await asyncio.wait_for(batcher.submit(["fine"]), timeout=5)

    assert run(main()) == ["fine|None"]
    batcher.stop()


def test_a_failing_batch_fails_its_requests_and_the_worker_lives_on():
    model = SlowModel()
    batcher = MicroBatcher(model, max_items=8, max_wait_s=0.0)
    batcher.start()

    async def main():
        with pytest.raises(ValueError, match="model failed"):
            await batcher.submit(["boom"])
        return await batcher.submit(["fine"])

    assert run(main()) == ["fine|None"]
    batcher.stop()
    assert not batcher.running


class ConcurrencyProbe:
    """Echoes texts; records how many calls ran at once at most and the size of each call."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, texts, langs):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append(len(texts))
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        return [f"{t}|{lang}" for t, lang in zip(texts, langs, strict=True)]


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_run_that_many_model_calls_at_once_and_answer_every_request(workers):
    model = ConcurrencyProbe()
    batcher = MicroBatcher(model, max_items=2, max_wait_s=0.0, workers=workers)
    batcher.start()

    async def main():
        return await asyncio.gather(*(batcher.submit([f"t{k}"], ["en"]) for k in range(12)))

    results = run(main())
    batcher.stop()
    assert results == [[f"t{k}|en"] for k in range(12)]
    assert model.peak == workers
    assert sum(model.calls) == 12 and min(model.calls) >= 1  # no empty call from an idle worker
    assert not batcher.running


def test_workers_must_be_at_least_one():
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher(lambda texts, langs: texts, workers=0)


def test_a_batch_is_handed_to_its_event_loop_at_once_and_skips_cancelled_requests():
    model = SlowModel()
    model.gate.clear()  # hold the model until every request is queued
    batcher = MicroBatcher(model, max_items=64, max_wait_s=0.5)
    batcher.start()

    async def main():
        loop = asyncio.get_running_loop()
        handovers = []
        threadsafe = loop.call_soon_threadsafe

        def counting(callback, *args):
            handovers.append(callback)
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counting
        tasks = [asyncio.ensure_future(batcher.submit([f"t{k}"])) for k in range(8)]
        await asyncio.sleep(0.05)  # all eight are queued behind the held model
        tasks[3].cancel()  # its client went away
        model.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, handovers

    results, handovers = run(main())
    batcher.stop()
    assert model.calls == [8]
    assert len(handovers) == 1  # one wake-up of the loop for the whole batch
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for k, r in enumerate(results) if k != 3] == [
        [f"t{k}|None"] for k in range(8) if k != 3
    ]


def test_a_lone_client_does_not_wait_for_others_after_its_first_request():
    model = SlowModel()
    batcher = MicroBatcher(model, max_items=64, max_wait_s=1.0)
    batcher.start()

    async def main():
        await batcher.submit(["first"])  # no history yet: waits up to max_wait for company
        started = time.perf_counter()
        for k in range(5):
            await batcher.submit([f"t{k}"])
        return time.perf_counter() - started

    elapsed = run(main())
    batcher.stop()
    assert model.calls == [1] * 6
    assert elapsed < 1.0  # five waits of max_wait would be 5 s


def test_clients_sending_one_request_at_a_time_are_batched_as_soon_as_all_are_back():
    model = SlowModel(delay=0.01)
    batcher = MicroBatcher(model, max_items=64, max_wait_s=1.0)
    batcher.start()

    async def client(k: int) -> None:
        for r in range(4):
            await batcher.submit([f"c{k}-{r}"])

    async def main():
        await asyncio.gather(*(client(k) for k in range(4)))

    started = time.perf_counter()
    run(main())
    elapsed = time.perf_counter() - started
    batcher.stop()
    assert model.calls == [4] * 4  # every batch held all four clients
    # The first batch waits max_wait (no history); the next three start when the fourth
    # request is in, not max_wait after the first (that would be 4 s in all).
    assert elapsed < 2.5
