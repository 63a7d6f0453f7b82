"""Scoring with gold labels: the trusted evaluator, reward-hack flags and the t statistics."""
