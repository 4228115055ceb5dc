"""Runnable studies, the ``semcom`` CLI, configs and plots."""
