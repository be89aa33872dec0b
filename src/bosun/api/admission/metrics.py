"""What admission costs and refuses, under kube-apiserver's metric names, for ``/metrics``.

Per phase of the chain (``apiserver_admission_step_admission_duration_seconds``, type
``admit`` or ``validate``) and per admission webhook called
(``apiserver_admission_webhook_admission_duration_seconds``,
``apiserver_admission_webhook_request_total`` with the HTTP code the call came to,
``apiserver_admission_webhook_rejection_count`` with why, and
``apiserver_admission_webhook_fail_open_count``), labelled as upstream labels them (a webhook's
type is ``admit`` or ``validating``). The two counters whose upstream names do not end in
``_total`` are exposed untyped, so that their names stay upstream's.
"""

from __future__ import annotations

from bosun.api.metricfamily import Family

STEP_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 2.5)
WEBHOOK_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 25.0)
# error_type of a rejection (upstream's WebhookRejectionErrorType).
CALLING_WEBHOOK_ERROR = "calling_webhook_error"
APISERVER_INTERNAL_ERROR = "apiserver_internal_error"
NO_ERROR = "no_error"


def _flag(value: bool) -> str:
    return "true" if value else "false"


class AdmissionMetrics:
    def __init__(self) -> None:
        self.step = Family("histogram", "apiserver_admission_step_admission_duration_seconds",
                           "Admission sub-step latency in seconds, by type (admit or validate), operation "
                           "and whether it was rejected.", ["type", "operation", "rejected"], STEP_BUCKETS)
        self.webhook_latency = Family(
            "histogram", "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency in seconds, by name, type (admit or validating), operation and whether "
            "it rejected the request.", ["name", "type", "operation", "rejected"], WEBHOOK_BUCKETS)
        self.webhook_requests = Family(
            "counter", "apiserver_admission_webhook_request",
            "Admission webhook requests, by name, type, operation, HTTP code and whether they were rejected.",
            ["name", "type", "operation", "code", "rejected"])
        self.webhook_rejections = Family(
            "unknown", "apiserver_admission_webhook_rejection_count",
            "Admission webhook rejections, by name, type, operation, error type (calling_webhook_error, "
            "apiserver_internal_error or no_error) and the rejection's HTTP code.",
            ["name", "type", "operation", "error_type", "rejection_code"])
        self.webhook_fail_open = Family(
            "unknown", "apiserver_admission_webhook_fail_open_count",
            "Admission webhook calls that failed and were ignored (failurePolicy Ignore), by name and type.",
            ["name", "type"])

    def families(self) -> list[Family]:
        return [self.step, self.webhook_latency, self.webhook_requests, self.webhook_rejections,
                self.webhook_fail_open]

    def observe_step(self, mutating: bool, operation: str, rejected: bool, seconds: float) -> None:
        self.step.observe(("admit" if mutating else "validate", operation, _flag(rejected)), seconds)

    def observe_webhook(self, name: str, kind: str, operation: str, seconds: float, code: int,
                        rejected: bool) -> None:
        flag = _flag(rejected)
        self.webhook_latency.observe((name, kind, operation, flag), seconds)
        self.webhook_requests.add((name, kind, operation, str(code), flag))

    def reject(self, name: str, kind: str, operation: str, error_type: str, code: int) -> None:
        self.webhook_rejections.add((name, kind, operation, error_type, str(min(code, 600))))

    def failed_open(self, name: str, kind: str) -> None:
        self.webhook_fail_open.add((name, kind))
