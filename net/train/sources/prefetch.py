"""Loading ahead (Caffe's prefetching): an iterator run in a background thread.

    ahead = Lookahead(batches_from(position), depth=4)
    for batch in ahead: ...          # items in the iterator's order; its errors re-raised here
    ahead.close()                    # stops the thread (also when it is blocked on a full queue)

The thread keeps at most `depth` items ready. Reading LMDB pages, decoding images and HDF5
reads release the GIL, so they overlap the net's forward and backward. An exception in the
thread is handed over in order: the consumer sees every item before it, then the exception.
A batch is a function of its position alone (net.train.data.Batches), so what the thread
produces is exactly what loading on demand would: only the timing differs.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator

_DONE = object()
_POLL_SECONDS = 0.05


class Lookahead:
    """Runs `iterable` in a daemon thread, up to `depth` items ahead of the consumer."""

    def __init__(self, iterable: Iterable[Any], depth: int):
        if depth < 1:
            raise ValueError(f"a lookahead needs a depth of at least 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True,
                                        name="gatework-prefetch")
        self._thread.start()

    def _run(self, iterator: Iterator[Any]) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
        except BaseException as error:          # handed to the consumer, in order
            self._put((False, error))
            return
        self._put((False, _DONE))

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> "Lookahead":
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        ok, value = self._queue.get()
        if ok:
            return value
        self._finished = True
        self._thread.join()
        if value is _DONE:
            raise StopIteration
        raise value

    def close(self) -> None:
        """Stop the thread and drop what it prepared; waits for the item it is making."""
        self._stop.set()
        self._finished = True
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                pass
        self._thread.join()
