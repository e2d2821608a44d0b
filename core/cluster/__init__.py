"""Many fetchdeck nodes on one shared store: heartbeats, the reaper, the event relay and cross-node commands.

The public surface is `ClusterNode`, `Command`, `Op` and `Broadcast`; core/cluster/node.py says how a
node keeps its leases and talks to the others, core/cluster/codec.py what goes over the channels.
"""

from core.cluster.codec import Command, Op
from core.cluster.node import COMMAND_TIMEOUT, Broadcast, ClusterNode, Reconnecting

__all__ = ["COMMAND_TIMEOUT", "Broadcast", "ClusterNode", "Command", "Op", "Reconnecting"]
