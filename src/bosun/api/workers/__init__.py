"""The API on every core: ``bosun server --api-workers N``.

One process owns the store (SQLite's single writer with its in-memory index, or the etcd
client) and runs everything that must act once: the leader-elected controllers, the scheduler,
the collectors. It is also an API process itself. N-1 more API processes do the per-request work that costs
CPU: TLS, HTTP, decoding, validation, admission, encoding, watch fan-out. The owner accepts
every connection and hands it to a process in turn, counting itself as less than a worker
since it has its own work besides (:mod:`.handoff`).

Each worker is a whole ``APIServer`` on a :class:`~bosun.store.base.Store` that is a local RPC
to the owner's store (:mod:`.remotestore` talking to :mod:`.storeserver` over a socketpair
inherited by that one child). So the things clients rely on come from one place, as when
several kube-apiservers share one etcd:

* resourceVersions are the owner store's single revision counter, so they grow across workers;
* compare-and-swap happens in the owner store, so a stale update is a 409 whichever worker
  takes it;
* a GET reads the store (through the RPC), so a write acknowledged by one worker is seen by a
  read on any other;
* each worker's watch cache is fed by one ordered store watch, so every watcher sees the same
  events in the same revision order.

The metrics history comes from the owner alone, and a CRD's arrival is waited for:

* the metrics history (and the scraping of the node agents that fills it): a worker forwards
  ``/metrics/history``, ``/metrics/query``, ``/federate``, ``metrics.k8s.io`` and
  ``custom.metrics.k8s.io`` over its channel (:mod:`bosun.monitoring.serving`); Prometheus'
  ``/metrics`` sums every process's series, whichever process a scrape reaches
  (:mod:`.metricspeers`);
* a CRD created through one process is learnt by the others from their watch caches; until
  then discovery, OpenAPI and requests for a kind the process does not know
  first wait for its cache to reach the store's revision (:mod:`bosun.api.catchup`).

With an etcd store the workers open etcd themselves (kube-apiserver's model); the channel then
only carries the configuration and the monitoring requests, and tells a worker that its
owner is gone.

:mod:`.pool` starts the workers, restarts one that dies, and stops them all with the server.
"""
