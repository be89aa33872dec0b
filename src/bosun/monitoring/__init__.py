"""Monitoring in the control plane: a short history of the cluster's metrics (node and pod
usage from the agents, custom metrics the agents scrape from annotated pods), the queries
over it (PromQL: :mod:`.promql`, :mod:`.promql_eval`), and the APIs that serve it
(custom.metrics.k8s.io, the JSON query API, /metrics/query, /federate)."""
