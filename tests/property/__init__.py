"""Property-based tests (hypothesis): outside input, tried by the thousand."""
