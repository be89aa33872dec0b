"""API Priority and Fairness (kube-apiserver's APF), sized for Bosun.

After authentication every request except the long-running streams is classified by the
FlowSchemas (:mod:`.classify`) into a priority level and a flow; the level's seats and queues
(:mod:`.queueset`) then let it run, make it wait (fair queuing over shuffle-sharded queues) or
refuse it with 429 and ``Retry-After``; :mod:`.dispatcher` keeps the levels and the
``apiserver_flowcontrol_*`` metrics, :mod:`.gate` decides which requests it sees and writes
the ``X-Kubernetes-PF-*`` headers, :mod:`.bootstrap` holds upstream's mandatory and
suggested objects (kept in the store by :mod:`bosun.api.flowcontrol`).

With ``--api-workers N`` each API process limits its own requests to 1/N of the server's
concurrency limit (``--max-requests-inflight`` + ``--max-mutating-requests-inflight``): the
kernel spreads connections evenly over the processes, and a limit shared across processes
would cost a round trip to the store owner on every request, more than the whole request
costs in APF otherwise. Several kube-apiservers behind a load balancer behave the same way.

A request's seats are upstream's work estimate (:mod:`.width`: lists by the objects in the
watch cache, writes followed by many watches for a moment after they end); a watch holds its
seat until its initial events are sent; levels lend and borrow seats every ten seconds by
their demand (:mod:`.borrowing`). With APF off, :mod:`.inflight` is kube-apiserver's plain
max-in-flight limit instead; :mod:`.debug` answers ``/debug/api_priority_and_fairness/dump_*``.

Left out of upstream's design: a level removed while it has requests is dropped at once
(upstream lets it drain, "quiescing"); requests that find a free seat take it without going
through a queue, so the per-queue executing counts of ``dump_queues`` are not kept.
"""
