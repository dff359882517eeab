"""Dataset readers (filled in by the readers module)."""
