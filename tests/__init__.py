"""The test suite: unit, integration, deploy and browser tests."""
