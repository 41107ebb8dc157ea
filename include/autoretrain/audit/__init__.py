"""Audit: the append-only record of the model's lifecycle (every registry alias move)."""
