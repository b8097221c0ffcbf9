"""Evaluation: pure metric functions (metrics.py) and one module per benchmark family."""
