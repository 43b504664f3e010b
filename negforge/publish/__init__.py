"""Outputs: rich and trainer-ready datasets, Parquet, manifest and score summaries."""
