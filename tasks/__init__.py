"""Thin Prefect @task wrappers over the core: retries, timeouts, caching."""
