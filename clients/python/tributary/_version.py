"""The client's version, sent as `context.library.version` (Segment's libraries do the same)."""

__version__ = "0.1.0"
LIBRARY_NAME = "tributary-python"
