"""Where the agent's ``ClusterReport`` goes after each change: the hub, the Git status branch.

Both reporters take ``submit(report)`` from the reconcile loop and return at once; their
own background task delivers the latest report, so a slow hub or Git server never holds
up reconciling.
"""

from agent.reporters.gitstatus import GitStatusReporter, read_status_branch
from agent.reporters.hub import HubReporter

__all__ = ["GitStatusReporter", "HubReporter", "read_status_branch"]
