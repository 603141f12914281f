"""Read envsteward's Prefect events back from the test server's events API (``/events/filter``)."""

from __future__ import annotations

import time
from typing import Any


def wait_for_events(prefix: str, resource_id: str, expect: dict[str, int], timeout: float = 30) -> list[Any]:
    """The events named ``prefix...`` about resource ``resource_id``, oldest first, polled until the counts
    per name are exactly ``expect`` (name -> count) or ``timeout`` s passed; the caller asserts on them.
    Flushes this process's event worker first. Calls the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    wanted = EventFilter(
        event=EventNameFilter(prefix=[prefix]), resource=EventResourceFilter(id=[resource_id])
    )
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            events = list(client.read_events(wanted, limit=50).events)
        counts = {name: sum(1 for e in events if e.event == name) for name in expect}
        if counts == expect or time.monotonic() > deadline:
            return sorted(events, key=lambda e: e.occurred)
        time.sleep(0.5)
