"""The node's network: the pod overlay between nodes, the service proxy, cluster DNS and
NetworkPolicy, each a :class:`bosun.network.node.NodeComponent` the agent starts after its
podCIDR is settled. The cluster-wide settings they share are in :mod:`bosun.network.config`."""
