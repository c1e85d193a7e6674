"""A Python worker: statistics and arithmetic for the Node parent in examples/demo.ts."""

import statistics
import sys
import time
from pathlib import Path

try:
    from multifrost import ChildWorker  # installed: pip install ./python
except ImportError:  # a fresh clone: use the library from the repository's python/src
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python" / "src"))
    from multifrost import ChildWorker


class MathWorker(ChildWorker):
    def add(self, a, b):
        return a + b

    def describe(self, values):
        return {
            "count": len(values),
            "mean": statistics.fmean(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "max": max(values),
        }

    def factorial(self, n):
        result = 1
        for i in range(2, n + 1):
            result *= i
        return result  # 20! fits in int64; larger values would need a string

    def divide(self, a, b):
        return a / b  # b == 0 raises ZeroDivisionError -> RemoteCallError in Node

    def slow(self, seconds):
        time.sleep(seconds)  # runs in the worker's thread pool: heartbeats and other calls go on
        return seconds

    async def fetch_later(self, value, seconds):
        import asyncio  # async def handlers run on the worker's asyncio loop

        await asyncio.sleep(seconds)
        return value


if __name__ == "__main__":
    MathWorker().run()
