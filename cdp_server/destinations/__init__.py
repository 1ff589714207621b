"""Connections: delivering the log's events to destinations (see base.py for the contract)."""
