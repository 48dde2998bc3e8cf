"""Unit tests, one module (or one document) at a time."""
