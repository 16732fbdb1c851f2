"""The API fleet owns inside each cluster: the ``Unit`` custom resource and its status."""
