"""Prefect flows: thin wiring around negforge.pipeline (which knows nothing of Prefect)."""
