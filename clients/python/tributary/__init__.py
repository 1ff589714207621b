"""Tributary client."""
