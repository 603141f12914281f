"""Only for the package list: flows/, tasks/ and deployments/ sit at the repository root (Prefect entrypoints
point at them) but install as envsteward.flows / envsteward.tasks / envsteward.deployments, which
``packages.find`` cannot express. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages("src"), "envsteward.flows", "envsteward.tasks", "envsteward.deployments"])
