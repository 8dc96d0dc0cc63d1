"""The garbage collector tuned for the long-lived server and worker processes.

An ingest group holds thousands of decoded events (dicts in dicts) at once; with the default young
threshold (700 allocations) the collector ran so often, and its full passes walked every object of
Django and the app as well, that it took about a fifth of the ingest worker's CPU. Freezing what
exists after start-up leaves those objects out of every later pass, and a larger young threshold
collects less often; reference cycles are still collected.
"""

import gc

# Allocations (net of deallocations) between collections of the youngest generation.
YOUNG_THRESHOLD = 20_000


def collector_tune() -> None:
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
