"""Tests that run the daemon as a real process over 127.0.0.1."""
