"""The one cache of data read from the database, per process (cachetools).

Pure statement builders use ``functools.lru_cache``; data is cached here and only here. Each key names
everything its value depends on (a webhook's field list is immutable at a version), and what can change
underneath expires after its time to live, so no entry needs to be invalidated by hand.
"""

from __future__ import annotations

from cachetools import LRUCache, TTLCache

# (webhook id, created_at, version) → that version's field definitions (a tuple; never mutated).
field_lists: LRUCache = LRUCache(maxsize=5_000)
# The rows the gate read (every webhook's id, created_at and version) → its answer, built from those lists.
gated: LRUCache = LRUCache(maxsize=64)
# The same key as field_lists → the manual-input form class built from those fields.
form_classes: LRUCache = LRUCache(maxsize=1_000)
# (database, list filters) → a list total above ``request_lists.EXACT_COUNT_LIMIT``: counting hundreds of
# thousands of rows costs more than the page itself, so a large total may be a minute old.
LARGE_COUNT_SECONDS = 60
large_counts: TTLCache = TTLCache(maxsize=1_000, ttl=LARGE_COUNT_SECONDS)
# (database, summary, day) → a summary of every open task (the admin dashboard's workload per person and
# systems behind), kept only when it counted more than ``request_lists.EXACT_COUNT_LIMIT`` tasks: each
# reads every open task (0.15 s at 100k requests), so a large one may be a minute old too.
task_summaries: TTLCache = TTLCache(maxsize=100, ttl=LARGE_COUNT_SECONDS)


def clear() -> None:
    """Forget everything (tests that rebuild the database under the same keys)."""
    for each in (field_lists, gated, form_classes, large_counts, task_summaries):
        each.clear()
