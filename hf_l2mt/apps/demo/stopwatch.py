"""Seconds spent in each step of the demo, for its last line and demo_results.json."""

import time


class Stopwatch:
    """Seconds spent in each named step, in order."""

    def __init__(self):
        self.start = self.last = time.time()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.time()
        self.laps[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return round(time.time() - self.start, 1)
