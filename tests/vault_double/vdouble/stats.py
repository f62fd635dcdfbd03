"""Request counters per path class and status, for tests that check what a client did."""

import collections
import threading


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = collections.Counter()
        self.statuses = collections.defaultdict(collections.Counter)
        self.faults = collections.Counter()

    def reset(self):
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.faults.clear()

    def count(self, cls, status):
        with self._lock:
            self.requests[cls] += 1
            self.statuses[cls][str(status)] += 1

    def fault(self, mode):
        with self._lock:
            self.faults[mode] += 1

    def snapshot(self):
        with self._lock:
            return {"requests": dict(self.requests),
                    "statuses": {k: dict(v) for k, v in self.statuses.items()},
                    "faults_applied": dict(self.faults)}
