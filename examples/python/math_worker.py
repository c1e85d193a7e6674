"""A Python worker: statistics and arithmetic for the Node parent in examples/demo.ts."""

import statistics
import time

from v4child import ChildWorker


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
        time.sleep(seconds)
        return seconds


if __name__ == "__main__":
    MathWorker().run()
