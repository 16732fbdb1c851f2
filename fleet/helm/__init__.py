"""Helm releases for the agent: charts from HelmRepositories and Git, values composed as
Flux composes them, the real ``helm`` binary run per action, and the pure decisions
(what a release's history calls for, what counts as drift) between them.

Modules: ``values``, ``index``, ``release``, ``commands`` and ``objects`` are pure;
``charts`` (HTTP, OCI, Git folders) and ``cli`` (helm processes) are the I/O edge;
``postrender`` is the program helm runs to label a release's objects.
"""
