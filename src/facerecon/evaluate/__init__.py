"""Evaluation of facerecon (or any method's outputs) on held-out synthetic and real data."""
