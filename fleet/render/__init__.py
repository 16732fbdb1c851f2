"""Rendering units into objects with the real kustomize (and, later, helm)."""
