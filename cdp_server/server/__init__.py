"""The server process: listeners, health, reflection, graceful shutdown."""
