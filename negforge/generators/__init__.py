"""LLM-written negatives: client, server manager, response checks."""
