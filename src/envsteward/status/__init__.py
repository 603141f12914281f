"""Platform status at a glance: one row per environment from the state the flows keep.

* :mod:`.records` — the small records the flows add to the state store for this view (a bounded history of
  health and drift points, the last backup run per target, the last inventory's counts, run links), and
  the *events* each change means (:mod:`.events` names them). Written by the flows, never by a reader.
* :mod:`.gather` — read-only: builds a :class:`~.model.PlatformStatus` from the health tracker's state, the
  drift and secret records, the backup listings (``replica.json``), the drill history and the promotion
  leases and rollback journals. It creates nothing (no folder, no key).
* :mod:`.model` — cells, rows and the verdict rules; :mod:`.render` — markdown, JSON and table rows;
  :mod:`.charts` — SVG charts (drift over time, health uptime).

Nothing here imports Prefect: the flows call it through ``tasks/status.py`` and ``tasks/events.py``.
"""
