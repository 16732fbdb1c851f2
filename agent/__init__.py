"""The per-cluster pull agent: reconcile loop, drift watch, status reporting."""
