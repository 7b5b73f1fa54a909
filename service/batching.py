"""Micro-batching: texts from concurrent requests share one model call.

Requests wait in a bounded queue; a worker thread takes as many whole requests as fit in
``max_items`` texts, runs the model once and hands each request its slice. It waits for others
to join the first request at most ``max_wait_s``, and no longer than it has reason to: once the
queue holds as many texts as the worker's last batch answered plus those already waiting when
that batch ended, the clients it just answered are back (clients that send one request at a
time, the usual way to call a per-message API), and the batch starts. So a lone client never
waits, and 32 clients are batched as soon as the 32nd request is in. With ``workers`` > 1, several
model calls run at once (each on fewer intra-op threads), so one batch is gathered and
answered while another runs. When the queue holds
``queue_max_items`` texts, or when the texts already queued would take longer than
``queue_max_wait_s`` to score at the measured rate, new requests are refused at once with
:class:`QueueFull` (the API answers 503 with Retry-After) instead of piling up memory and
latency. The time bound is the one that matters under overload: on a 2-core CPU the default
2048 texts are about a minute of work, so without it an overloaded service answers every
request, late, past its clients' timeouts, and takes as long to recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.predictor import Prediction

log = logging.getLogger(__name__)

PredictFn = Callable[[list[str], list[str | None]], list[Prediction]]


class QueueFull(RuntimeError):
    """The queue is full; ``retry_after`` is a whole-second estimate of when it will drain."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the request queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Request:
    texts: list[str]
    langs: list[str | None]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class MicroBatcher:
    """Groups concurrent :meth:`submit` calls into model calls on one worker thread."""

    def __init__(
        self,
        predict: PredictFn,
        max_items: int = 64,
        max_wait_s: float = 0.005,
        queue_max_items: int = 2048,
        on_batch: Callable[[int, float], None] | None = None,
        queue_max_wait_s: float = 0.0,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._predict = predict
        self.workers = workers
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.queue_max_items = queue_max_items
        self.queue_max_wait_s = queue_max_wait_s  # 0: no time bound
        self._on_batch = on_batch
        self._queue: deque[_Request] = deque()
        self._queued_items = 0  # in the queue or in a model call
        self._waiting_items = 0  # in the queue only
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._items_per_s = 50.0  # a cautious prior; replaced by measurements

    @property
    def queued_items(self) -> int:
        return self._queued_items

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads) and not self._stopping

    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        if any(t.is_alive() for t in self._threads):
            return
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"microbatcher-{k}", daemon=True)
            for k in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued requests, then stop the workers."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    async def submit(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """Predictions for ``texts`` once their batch has run; raises :class:`QueueFull`."""
        texts = list(texts)
        langs = list(langs) if langs is not None else [None] * len(texts)
        loop = asyncio.get_running_loop()
        request = _Request(texts, langs, loop.create_future(), loop)
        with self._cond:
            if self._stopping or not self._threads:
                raise RuntimeError("the micro-batcher is not running")
            # An oversized request is still admitted into an empty queue, so it can never starve.
            if self._queued_items and (
                self._queued_items + len(texts) > self.queue_max_items
                or 0 < self.queue_max_wait_s < self._expected_wait_s()
            ):
                raise QueueFull(self._retry_after())
            self._queue.append(request)
            self._queued_items += len(texts)
            self._waiting_items += len(texts)
            self._cond.notify()
        return await request.future

    def _expected_wait_s(self) -> float:
        """Seconds the texts already queued (or in the model) take at the measured rate
        (the rate is per model call; ``workers`` calls run at once)."""
        return self._queued_items / max(self._items_per_s * self.workers, 1e-3)

    def _retry_after(self) -> int:
        return max(1, min(60, math.ceil(self._expected_wait_s())))

    def _take_batch(self, expected: int) -> list[_Request] | None:
        """The next batch, gathered as the module docstring says: the wait for company ends
        once ``expected`` texts are queued (or at ``max_wait_s``, or at ``max_items``)."""
        expected = min(self.max_items, expected)
        with self._cond:
            while True:
                while not self._queue:
                    if self._stopping:
                        return None
                    self._cond.wait()
                deadline = time.monotonic() + self.max_wait_s
                while self._waiting_items < expected and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch, n = [], 0
                while self._queue and (
                    not batch or n + len(self._queue[0].texts) <= self.max_items
                ):
                    request = self._queue.popleft()
                    batch.append(request)
                    n += len(request.texts)
                self._waiting_items -= n
                if batch:  # another worker may have taken the queue while this one waited
                    return batch

    def _work(self) -> None:
        expected = self.max_items  # no history yet
        while True:
            batch = self._take_batch(expected)
            if batch is None:
                return
            texts = [t for r in batch for t in r.texts]
            langs = [lang for r in batch for lang in r.langs]
            started = time.perf_counter()
            try:
                predictions = self._predict(texts, langs)
                error = None
            except BaseException as exc:  # handed to every waiting request, never kills the worker
                # BaseException: a Rust panic inside tokenizers arrives as pyo3's PanicException,
                # which is not an Exception; a dead worker would leave every request hanging.
                log.exception("model call failed for a batch of %d texts", len(texts))
                predictions = []
                error = exc
                if not isinstance(exc, Exception):
                    error = RuntimeError(f"model call failed: {exc!r}")
            elapsed = time.perf_counter() - started
            with self._cond:
                self._queued_items -= len(texts)
                if error is None and elapsed > 0:
                    self._items_per_s = 0.8 * self._items_per_s + 0.2 * (len(texts) / elapsed)
                # Counted before the answers go out: some of their clients may be back before
                # this worker gathers again, and they are part of what it should wait for.
                expected = self._waiting_items + len(texts)
            if self._on_batch is not None:
                self._on_batch(len(texts), elapsed)
            # One hand-over per event loop, not one per request: each call_soon_threadsafe
            # wakes the loop, which then holds the GIL while this thread waits for it to
            # hand over the next one (a GIL convoy of several ms per batch at 32 clients).
            answers: dict[asyncio.AbstractEventLoop, list[tuple]] = {}
            offset = 0
            for request in batch:
                part = predictions[offset : offset + len(request.texts)]
                offset += len(request.texts)
                answers.setdefault(request.loop, []).append((request.future, part, error))
            for loop, items in answers.items():
                # RuntimeError: that event loop has closed; nobody is waiting.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve_all, items)


def _resolve_all(items: list[tuple[asyncio.Future, list[Prediction], Exception | None]]) -> None:
    for future, result, error in items:
        if future.cancelled():  # the client went away
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
