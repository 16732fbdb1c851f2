"""The demo: three local clusters, a local Git server with the example fleet repository,
and one agent per cluster, brought up (and torn down) by one command."""
