"""``fleet tui``: the whole fleet on one screen, live from the hub or read from Git.

``app`` (``FleetApp``), ``feed`` (the hub's stream or the status branch, as updates),
``client`` (the hub's API over httpx), ``state`` (the TUI's copy of the fleet), ``view``
(what a row shows, sorting, filtering), ``screens/`` (overview, pipeline, cluster,
events, dialogs) and ``widgets/``; the styles are in ``fleet.tcss``.
"""
