"""A run folder's store: crash-safe shards (shards.py) and what a resume may reuse (identity.py)."""
