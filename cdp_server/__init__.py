"""Tributary server."""
