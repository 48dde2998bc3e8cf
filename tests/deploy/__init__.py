"""Tests of the files under deploy/ and of the Dockerfile."""
