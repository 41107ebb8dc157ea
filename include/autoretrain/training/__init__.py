"""Training: features, model families and their search, evaluation, plots, model cards, and the steps."""
