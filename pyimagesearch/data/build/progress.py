"""Progress of a long build: a bar for people at a terminal, a log line for everyone else."""

from __future__ import annotations

import logging
import sys
import time

logger = logging.getLogger(__name__)


class Progress:
    """A tqdm bar when stderr is a terminal, otherwise a log line every ``interval`` s; a
    context that closes the bar."""

    def __init__(self, total: int, description: str, interval: float = 30.0) -> None:
        self.total = total
        self.description = description
        self.interval = interval
        self.done = 0
        self._started = self._last = time.monotonic()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit="img", leave=False)

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            rate = self.done / max(now - self._started, 1e-9)
            logger.info("%s: %d/%d images (%.0f%%), %.0f img/s", self.description, self.done,
                        self.total, 100.0 * self.done / max(self.total, 1), rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
