"""Prefect flows: thin wiring around negforge.pipeline (which knows nothing of Prefect).

Importing this package sets negforge's safe Prefect settings first (no telemetry, a private database for an
ephemeral server, a quiet console; see `negforge.flows.environment`), so every flow entry point gets them.
"""

from negforge.flows.environment import configure_prefect

configure_prefect()
