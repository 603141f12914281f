"""The drift engine: desired vs live, and environment parity. No Prefect here."""
