"""Predictions: calibrated, explained propensity scores as profile traits (docs/predictions.md)."""

import os

# LightGBM's OpenMP threads spin between parallel regions by default (GOMP's active wait). On a server
# whose cores are shared with the engine's threads (or other processes) the spinning threads take the
# cores the working ones need: training 20,000 rows took 15 s instead of 0.6 s on a busy 2-core
# machine. Passive waiting sleeps instead. Set before `model` imports LightGBM (libgomp reads it once,
# when loaded); an operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
