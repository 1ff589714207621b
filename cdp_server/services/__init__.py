"""gRPC services: bytes in, bytes out on the hot paths; the engine does the work."""
