"""Health checks: run one check (:mod:`.checks`), track confirmed status changes (:mod:`.tracker`), build the
alerts (:mod:`.alerts`) and the reports (:mod:`.report`). Nothing here imports Prefect.

The catalog's check definitions live in :mod:`.specs`.
"""
