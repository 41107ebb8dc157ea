"""Promotion: the pure champion/challenger decision, its statistics, the canary, and the rollout steps."""
