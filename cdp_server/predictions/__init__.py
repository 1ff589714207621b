"""Predictions: calibrated, explained propensity scores as profile traits (docs/predictions.md)."""
