"""The mixing stage: a shard's candidates as one filter batch (batch.py), then per-source quotas and the
fallback that pick each query's final negatives (mix.py)."""
