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

Left out of upstream's design: borrowing between levels (``lendablePercent``,
``borrowingLimitPercent``), width estimates (every request is one seat, a list of 10,000
objects too), and holding a watch's seat while its initial events are sent.
"""
