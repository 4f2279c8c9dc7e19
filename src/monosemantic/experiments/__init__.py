"""Experiments: each paper experiment and road composes the library, returns a result and writes a run directory."""
