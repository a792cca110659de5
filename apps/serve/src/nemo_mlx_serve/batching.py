"""Dynamic batching: requests that arrive together are decoded together.

One worker thread per model takes rounds from the queue: the oldest waiting request, then
the later ones with the same options, up to `max_batch` requests and `max_audio` seconds of
audio in all (one request longer than that runs alone). Before a round starts it waits for
company, up to `max_wait` seconds, but only while other requests are still being received
(`Arrivals`): a request that has nobody on the way runs at once, so one client alone pays no
wait. Rounds go oldest first, so no request is passed over: a request waits for the
round in flight, then for the rounds of requests older than it. The model's own batching
then splits a round by its attention-memory rule, exactly as the CLI does.

Rounds run on the server's one MLX thread (`compute.Compute`), so that one model never runs
two batches at once, nor two models at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from speech_transcript import Transcript

from .compute import Compute
from .models import Options

Run = Callable[[Sequence[np.ndarray], Options, int], list[Transcript]]


@dataclass(frozen=True)
class BatchLimits:
    max_batch: int = 16  # requests in one round
    max_wait: float = 0.02  # seconds the first request of a round waits for company
    max_audio: float = 600.0  # seconds of audio in one round (one longer request runs alone)
    # The model's batch size within a round: a full round is one batch. Since padded frames
    # cost nothing on the CPU either (mlx-conformer's packed rows), one batch of 16 beats
    # two of 8 (a round of 16 benchmark clips, demo model: 0.247 -> 0.217 s).
    batch_size: int = 16


class Arrivals:
    """Requests being received (their upload read and decoded) that may join a round yet.

    Counted across the server, whatever model they name (the model is known only once the
    form is read): waiting for one that names another model costs at most `max_wait`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def count(self) -> int:
        return self._count

    def listen(self, nudge: Callable[[], None]) -> None:
        """Call `nudge` (from the event loop's thread) whenever a request is no longer on its way."""
        self._listeners.append(nudge)

    @contextmanager
    def receiving(self) -> Iterator[None]:
        """One request on its way for the block. Queue it (`Batcher.submit`) inside the
        block, so that a round always sees it: as arriving, or as waiting."""
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
            for nudge in self._listeners:
                nudge()


@dataclass
class _Job:
    signal: np.ndarray
    options: Options
    seconds: float
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)

    def settle(self, result: Transcript | None, error: BaseException | None) -> None:
        def apply() -> None:
            if self.future.done():  # the client went away
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(apply)


class Batcher:
    """Queues one model's requests and runs them in rounds on a worker thread."""

    def __init__(
        self,
        name: str,
        run: Run,
        limits: BatchLimits,
        sample_rate: int,
        compute: Compute,
        arrivals: Arrivals,
    ) -> None:
        self.name = name
        self._arrivals = arrivals
        self._compute = compute
        self._run = run
        self.limits = limits
        self._rate = sample_rate
        self._waiting: list[_Job] = []
        self._ready = threading.Condition()
        self._closed = False
        self.rounds = 0  # rounds run (the tests and /health read these)
        self.largest_round = 0
        self._arrivals.listen(self._nudge)
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, signal: np.ndarray, options: Options) -> asyncio.Future[Transcript]:
        """Queue `signal`; the future is its transcript, decoded in a round with whatever
        arrives with it. Cancelling the future (a client gone) drops the request if its round
        has not begun. Call it on the event loop."""
        loop = asyncio.get_running_loop()
        job = _Job(signal, options, len(signal) / self._rate, loop.create_future(), loop)
        with self._ready:
            if self._closed:
                raise RuntimeError(f"{self.name}: the server is stopping")
            self._waiting.append(job)
            self._ready.notify()
        return job.future

    async def transcribe(self, signal: np.ndarray, options: Options) -> Transcript:
        return await self.submit(signal, options)

    def _nudge(self) -> None:
        with self._ready:
            self._ready.notify()

    @property
    def waiting(self) -> int:
        with self._ready:
            return len(self._waiting)

    def close(self) -> None:
        """Finish the rounds queued, then stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()

    def _work(self) -> None:
        while (jobs := self._next_round()) is not None:
            if jobs:
                self._execute(jobs)

    def _next_round(self) -> list[_Job] | None:
        limits = self.limits
        with self._ready:
            while not self._waiting:
                if self._closed:
                    return None
                self._ready.wait()
            first = self._waiting[0]
            deadline = first.arrived + limits.max_wait
            while (
                not self._closed
                and len(self._waiting) < limits.max_batch
                and self._arrivals.count > 0
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            live = [job for job in self._waiting if not job.future.done()]
            if not live:
                self._waiting.clear()
                return []
            chosen, seconds = [live[0]], live[0].seconds
            for job in live[1:]:
                if len(chosen) >= limits.max_batch:
                    break
                if job.options == chosen[0].options and seconds + job.seconds <= limits.max_audio:
                    chosen.append(job)
                    seconds += job.seconds
            taken = {id(job) for job in chosen}
            self._waiting = [j for j in live if id(j) not in taken]
            return chosen

    def _execute(self, jobs: list[_Job]) -> None:
        self.rounds += 1
        self.largest_round = max(self.largest_round, len(jobs))
        try:
            signals = [j.signal for j in jobs]
            results = self._compute.call(
                self._run, signals, jobs[0].options, self.limits.batch_size
            )
        except Exception as err:  # one failed round fails its requests, not the server
            for job in jobs:
                job.settle(None, err)
            return
        for job, result in zip(jobs, results, strict=True):
            job.settle(result, None)
