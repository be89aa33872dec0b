"""The API server's own metrics, kept as plain counts, read back as Prometheus would."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bosun.api.instrumentation import APIMetrics


def scrape(m: APIMetrics) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = generate_latest(m.registry).decode()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_histogram_buckets_are_cumulative_with_inclusive_bounds() -> None:
    m = APIMetrics()
    key = ("GET", "", "v1", "pods", "")
    for v in (0.004, 0.005, 0.3, 100.0):
        m.latency.observe(key, v)
    samples = scrape(m)["apiserver_request_duration_seconds"]
    buckets = {s[1]["le"]: s[2] for s in samples if s[0].endswith("_bucket")}
    assert buckets["0.005"] == 2  # 0.005 itself counts in le="0.005"
    assert buckets["0.2"] == 2 and buckets["0.4"] == 3 and buckets["60.0"] == 3
    assert buckets["+Inf"] == 4
    (count,) = [s[2] for s in samples if s[0].endswith("_count")]
    (total,) = [s[2] for s in samples if s[0].endswith("_sum")]
    assert count == 4 and abs(total - 100.309) < 1e-9


def test_counters_and_gauges_by_labels() -> None:
    m = APIMetrics()
    m.requests.add(("LIST", "", "v1", "pods", "", "200"))
    m.requests.add(("LIST", "", "v1", "pods", "", "200"))
    m.requests.add(("GET", "", "v1", "pods", "", "404"))
    m.inflight.add(("readOnly",))
    m.inflight.add(("readOnly",))
    m.inflight.add(("readOnly",), -1)
    m.store_errors.add(("get",))
    fams = scrape(m)
    reqs = {(s[1]["verb"], s[1]["code"]): s[2] for s in fams["apiserver_request"]}
    assert reqs == {("LIST", "200"): 2, ("GET", "404"): 1}
    assert [s[2] for s in fams["apiserver_current_inflight_requests"]] == [1]
    assert [(s[0], s[2]) for s in fams["etcd_request_errors"]] == [("etcd_request_errors_total", 1)]
