"""A small threaded pipeline: stages joined by bounded queues, their busy seconds, and a progress bar.

The loader wires its stages with it (read -> spans -> embed -> bulk); the first failure in any
stage stops them all and is raised in the caller's thread, and Ctrl-C lets each stage stop at its
next item so that the checkpoint stays whole.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict
from typing import Callable, Iterable

from tqdm import tqdm

from ner_os.loader.ledger import Mark


class Progress:
    """A progress bar over the input's bytes (an ETA when the size is known), with docs/s and mentions/s."""

    def __init__(self, total_bytes: int | None, enabled: bool | None, mark: Mark):
        self.started = time.perf_counter()
        self.bar = tqdm(total=total_bytes, initial=mark.offset, unit="B", unit_scale=True, unit_divisor=1024,
                        desc="load", dynamic_ncols=True, disable=None if enabled is None else not enabled)

    def update(self, mark: Mark, documents: int, mentions: int) -> None:
        self.bar.update(mark.offset - self.bar.n)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{documents / elapsed:.1f} docs/s, {mentions / elapsed:.1f} mentions/s",
                                 refresh=False)

    def close(self) -> None:
        self.bar.close()


class StageClock:
    """Busy seconds per stage, added up across threads."""

    def __init__(self):
        self._seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] += seconds

    @contextlib.contextmanager
    def timed(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)


_END = object()  # flows down the queues after the last batch
_STOPPED = object()  # what a stage gets instead when another stage failed


class Stages:
    """Threads joined by bounded queues. The first failure stops every stage and is raised by ``wait``."""

    def __init__(self, clock: StageClock):
        self.clock = clock
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def source(self, name: str, items: Iterable, outbox: queue.Queue) -> None:
        def body():
            iterator = iter(items)
            while True:
                with self.clock.timed(name):
                    item = next(iterator, _END)
                if not self._put(outbox, item) or item is _END:
                    return

        self._spawn(name, body)

    def step(self, name: str, work: Callable, inbox: queue.Queue, outbox: queue.Queue) -> None:
        def body():
            while True:
                item = self._get(inbox)
                if item is _STOPPED:
                    return
                if item is _END:
                    self._put(outbox, _END)
                    return
                with self.clock.timed(name):
                    result = work(item)
                if not self._put(outbox, result):
                    return

        self._spawn(name, body)

    def sink(self, work: Callable, inbox: queue.Queue) -> None:
        def body():
            while True:
                item = self._get(inbox)
                if item is _STOPPED or item is _END:
                    return
                work(item)

        self._spawn("sink", body)

    def wait(self) -> None:
        try:
            for thread in self.threads:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:  # Ctrl-C: let the stages stop at their next batch, keep the checkpoint whole
            self.stop.set()
            for thread in self.threads:
                thread.join()
            raise
        if self.failure is not None:
            raise self.failure

    def _spawn(self, name: str, body: Callable[[], None]) -> None:
        def run():
            try:
                body()
            except BaseException as error:  # handed to wait(), which raises it in the caller's thread
                if self.failure is None:
                    self.failure = error
                self.stop.set()

        thread = threading.Thread(target=run, name=f"ner-os-load-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _put(self, outbox: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                outbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, inbox: queue.Queue):
        while not self.stop.is_set():
            try:
                return inbox.get(timeout=0.1)
            except queue.Empty:
                continue
        return _STOPPED
