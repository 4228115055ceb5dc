"""Shared machinery of the ``semcom`` commands; it knows no study: argument types, executors, the
results store and manifests, plots, plug-ins, extras, feature sources."""
