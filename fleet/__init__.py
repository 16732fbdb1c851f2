"""fleet: a GitOps fleet manager for many Kubernetes clusters."""

__version__ = "0.1.0"
