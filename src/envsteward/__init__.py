"""envsteward: keeps development, staging and production consistent, recoverable and safe.

The package under ``src/envsteward`` is the domain core. It never imports Prefect; the flows and tasks
that orchestrate it live in ``flows/`` and ``tasks/`` (installed as ``envsteward.flows`` and
``envsteward.tasks``).
"""

__version__ = "0.1.0"
