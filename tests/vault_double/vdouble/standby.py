"""HA topology: nodes (listeners) of one cluster, which one is active, and what a standby says.

The double runs a cluster as several listeners of one process sharing one core (one
storage, as Vault's HA nodes share theirs). Each listener is a node; one is active. A
standby node (Vault's http/handler.go with request forwarding off, or failing):
- answers every API request with 307 and Location = the active node's address + the same
  path and query (no body), after the seal check, before any token check;
- answers 503 "no active Vault instance found" when no node is active (an election);
- answers sys/health itself: 429 with standby=true (200 with ?standbyok=true), sys/leader
  (ha_enabled, is_self=false, leader_address), sys/seal-status, sys/unseal, sys/init.
sys/step-down (update + sudo) on the active node hands the active role to the next node.
"""

import time

from .durations import rfc3339nano
from .errors import VaultError

STANDBY_LOCAL = {"sys/health", "sys/leader", "sys/seal-status", "sys/unseal", "sys/init"}
ZERO_TIME = "0001-01-01T00:00:00Z"


class Node:
    """One listener of the cluster; address is filled in once it listens."""

    def __init__(self, index, cluster):
        self.index = index
        self.cluster = cluster
        self.address = ""

    @property
    def active(self):
        return self.cluster.active == self.index


class Cluster:
    """The HA cluster: its nodes and the index of the active one (None: no active node)."""

    def __init__(self, count):
        self.nodes = [Node(i, self) for i in range(count)]
        self.active = 0
        self.active_since = time.time()

    def leader_address(self):
        return self.nodes[self.active].address if self.active is not None else ""

    def set_active(self, index):
        if index is not None and not 0 <= index < len(self.nodes):
            raise VaultError(400, f"no node {index}")
        self.active = index
        self.active_since = time.time()

    def step_down(self):
        """sys/step-down: the active node gives up; the next node takes over."""
        if self.active is None:
            return
        self.set_active((self.active + 1) % len(self.nodes) if len(self.nodes) > 1 else
                        self.active)

    def describe(self):
        return {"active": self.active, "nodes": [n.address for n in self.nodes]}


def standby_answer(node, url_path, raw_query):
    """The (status, body, headers) a standby gives to an API request it does not serve."""
    leader = node.cluster.leader_address()
    if not leader:
        return 503, {"errors": ["no active Vault instance found"]}, {}
    location = leader.rstrip("/") + url_path + (("?" + raw_query) if raw_query else "")
    return 307, None, {"Location": location}


def health(node, query, status, body):
    """Adjusts sys/health for a standby node: 429 (standbycode) unless standbyok."""
    if node is None or node.active or body.get("sealed"):
        return status, body
    body = dict(body)
    body["standby"] = True
    code = status
    if query.get("standbyok", "").lower() not in ("true", "1"):
        try:
            code = int(query.get("standbycode", 429))
        except ValueError:
            raise VaultError(400) from None
    return code, body


def leader(node):
    """sys/leader of an HA node."""
    cluster = node.cluster
    leader_addr = cluster.leader_address()
    return {"ha_enabled": True, "is_self": node.active,
            "active_time": rfc3339nano(cluster.active_since) if node.active else ZERO_TIME,
            "leader_address": leader_addr,
            "leader_cluster_address": _cluster_address(leader_addr),
            "performance_standby": False, "performance_standby_last_remote_wal": 0}


def _cluster_address(api_addr):
    """Vault's default cluster address: https, API port + 1."""
    if not api_addr:
        return ""
    host, _, port = api_addr.split("://", 1)[-1].rpartition(":")
    try:
        return f"https://{host}:{int(port) + 1}"
    except ValueError:
        return ""
