"""Domain adaptation from a corpus alone: queries written by the run's LLM for a seeded sample of passages
(InPars, Promptagator), kept when the retriever finds their passage again (round-trip consistency), then
negforge's usual mining, filters and training (GPL's MarginMSE labels when a cross-encoder is configured)."""
