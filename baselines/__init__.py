"""Baselines the two seed papers compare against."""
