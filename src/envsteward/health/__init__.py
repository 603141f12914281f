"""Health checks: run one check (:mod:`.checks`), track confirmed status changes (:mod:`.tracker`), build the
alerts (:mod:`.alerts`) and the reports (:mod:`.report`). Nothing here imports Prefect.

The catalog's check definitions live in :mod:`.specs`.
"""

# The catalog's models embed :mod:`.specs`, and :mod:`.specs` uses the catalog's secret references: load
# the catalog package first so that importing ``envsteward.health.specs`` on its own cannot hit the
# partially initialised ``envsteward.catalog`` (a circular import).
import envsteward.catalog  # noqa: F401
