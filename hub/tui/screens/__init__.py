"""One module per screen: overview, pipeline, cluster detail, events, and the dialogs."""
