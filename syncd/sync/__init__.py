"""Doing the work: passes, workers, and the executor that carries out planned actions."""
