"""The batching worker of `seq2seq serve`: request threads `submit` sentences with their decode
settings and wait; one worker (`run`) takes every job queued, up to `max_batch` sentences, groups
the jobs by decode settings, translates each group in one call and hands each job its slice. A
group whose translation fails is translated job by job again, so only the bad request fails.
Only the worker touches the model. No HTTP here: server.py turns `RequestError` into replies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import DecodeConfig

log = logging.getLogger("seq2seq")


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line message (the JSON {"error": ...})."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class _Job:
    sentences: list[str]
    cfg: DecodeConfig
    done: threading.Event = field(default_factory=threading.Event)
    result: list[str] | None = None
    error: str | None = None


class Batcher:
    """One worker thread translates for every request thread: `submit` queues a job and waits for it."""

    def __init__(self, translate: Callable[[list[str], DecodeConfig], list[str]], max_batch: int, wait_s: float):
        self._translate, self._max_batch, self._wait_s = translate, max_batch, wait_s
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._queued = 0  # sentences in the queue
        self._stopping = self._hurry = False  # hurry: no more waiting for rounds to fill
        self._thread = threading.Thread(target=self.run, name="seq2seq-serve-worker", daemon=True)
        self.stats = {"jobs": 0, "sentences": 0, "batches": 0, "translate_calls": 0, "max_jobs_per_batch": 0}
        self.pending = 0  # jobs submitted and not yet answered

    def start(self) -> None:
        """Run the worker in a thread of its own (or call `run` in the thread that should translate)."""
        self._thread.start()

    def hurry(self) -> None:
        """Stop waiting for rounds to fill (`batch_wait_ms`): the server is stopping, translate what comes."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Translate what is queued, then end the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def submit(self, sentences: list[str], cfg: DecodeConfig) -> list[str]:
        job = _Job(sentences, cfg)
        with self._cond:
            if self._stopping:
                raise RequestError(503, "the server is stopping")
            self._queue.append(job)
            self._queued += len(sentences)
            self.pending += 1
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise RequestError(500, job.error)
        assert job.result is not None
        return job.result

    def _take(self) -> list[_Job]:
        """The next round: FIFO jobs up to max_batch sentences (at least one job); [] once stopped and empty."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            deadline = time.monotonic() + self._wait_s
            while self._queue and self._queued < self._max_batch and not (self._stopping or self._hurry):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            jobs, size = [], 0
            while self._queue and (not jobs or size + len(self._queue[0].sentences) <= self._max_batch):
                jobs.append(self._queue.popleft())
                size += len(jobs[-1].sentences)
            self._queued -= size
            return jobs

    def run(self) -> None:
        """The worker loop, in the calling thread, until `stop` (what is queued then is translated first)."""
        while jobs := self._take():
            groups: dict[DecodeConfig, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.cfg, []).append(job)
            stats = self.stats
            stats["batches"] += 1
            stats["jobs"] += len(jobs)
            stats["max_jobs_per_batch"] = max(stats["max_jobs_per_batch"], len(jobs))
            for cfg, group in groups.items():
                self._translate_group(cfg, group)
            with self._cond:
                self.pending -= len(jobs)

    def _translate_group(self, cfg: DecodeConfig, group: list[_Job]) -> None:
        sentences = [s for job in group for s in job.sentences]
        self.stats["translate_calls"] += 1
        self.stats["sentences"] += len(sentences)
        try:
            out = self._translate(sentences, cfg)
        except Exception as err:  # a failure answers this group's requests with 500; the server goes on
            if len(group) > 1:  # one bad request must not fail the others batched with it: each alone
                for job in group:
                    self._translate_group(cfg, [job])
                return
            log.exception("translation of %d sentences failed", len(sentences))
            message = f"translation failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            for job in group:
                job.error = message
                job.done.set()
            return
        start = 0
        for job in group:
            job.result = out[start : start + len(job.sentences)]
            start += len(job.sentences)
            job.done.set()


# --- requests -------------------------------------------------------------------------------------
