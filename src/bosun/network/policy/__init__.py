"""NetworkPolicy (networking.k8s.io/v1) enforced in the node's nftables table.

Three steps, each testable alone: :mod:`.rules` turns Pods, Namespaces and NetworkPolicies
into what each local pod may receive and send (plain data); :mod:`.render` turns that into
nftables chains; :mod:`.component` watches the API and sends only the chains that changed.
"""
