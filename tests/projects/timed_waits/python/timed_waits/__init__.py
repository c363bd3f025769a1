"""Fixture: timed waits in the host code of a CUDA library."""
