"""Tributary's end-to-end ingest benchmark and its baselines (`python -m benchmarks.run`)."""
