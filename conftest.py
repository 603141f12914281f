"""Root conftest: registers the service fixtures every test directory may use."""

pytest_plugins = [
    "tests.fixtures.pg_cluster",
    "tests.fixtures.vault",
    "tests.fixtures.aws",
    "tests.fixtures.databases",
    "tests.fixtures.standins",
    "tests.fixtures.prefect",
    "tests.fixtures.faultproxy",
    "tests.fixtures.audit_signing",
]
