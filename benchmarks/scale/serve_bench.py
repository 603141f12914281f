"""Serve every deployment of ``prefect.yaml`` as the embedded runner does (``envsteward.deployments.serve``),
except that ``drift-scan`` has no schedule: the benchmark starts its runs itself (``run_deployment``), one
after the other, so that it can change live values and reset its call counters between runs. Everything
else (``health-check`` every 30 s, the every-minute sweeps) keeps the schedule of ``prefect.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from envsteward.deployments.catalog import REPO_ROOT, read_deployments
from envsteward.deployments.serve import build_runner_deployment
from prefect import serve


def main() -> None:
    os.chdir(REPO_ROOT)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    definitions = [
        dataclasses.replace(d, active=False) if d.name == "drift-scan" else d for d in read_deployments()
    ]
    serve(*[build_runner_deployment(d) for d in definitions], print_starting_message=False)


if __name__ == "__main__":
    main()
