"""The printed tables (the JSON file holds the same numbers and more)."""

from __future__ import annotations

from typing import Any

from _cli import text_table

WRITE_TARGET = 2000.0  # pod writes/s on SQLite (the target)
WATCH_TARGET_MS = 50.0  # p99 write-to-watch delivery
WORKERS_TARGET = 1.6  # pod creates/s with 2 API workers over 1


def _f(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def _pct(v: dict[str, Any], key: str) -> str:
    """CPU use during the phase, in % of one core ("-" when not measured)."""
    return _f(100 * v[key] / v["wall_s"], 0) if key in v and v["wall_s"] else "-"


def verbs_table(result: dict[str, Any]) -> str:
    rows = []
    for store, s in result["stores"].items():
        for n, verbs in s["throughput"].items():
            for verb, v in verbs.items():
                rows.append([
                    store, n, verb, _f(v["ops_per_s"]), _f(v["p50_ms"], 2), _f(v["p99_ms"], 2),
                    _f(v["max_ms"], 1), _f(v.get("server_cpu_ms_per_op", 0.0), 3),
                    _pct(v, "server_cpu_s"), _pct(v, "etcd_cpu_s"), _pct(v, "loadgen_cpu_s"),
                    _pct(v, "other_cpu_s"),
                    f'{v["errors_5xx"]}/{v["timeouts"]}' if "errors_5xx" in v else "-",
                ])
    return text_table(
        ["store", "clients", "verb", "ops/s", "p50 ms", "p99 ms", "max ms", "srv ms/op", "srv%", "etcd%",
         "loadgen%", "other%", "5xx/timeout"],
        rows,
    )


def _load(w: dict[str, Any]) -> str:
    """The machine's 1-minute load average before/after the timed writes ("" in older results)."""
    return "/".join(f"{x:.2f}" for x in w.get("loadavg", ()))


def _where(w: dict[str, Any]) -> str:
    procs = w.get("watcher_procs", 0)
    return f"{procs} processes of their own" if procs else "the writers' process"


def watch_table(result: dict[str, Any]) -> str:
    rows = []
    for store, s in result["stores"].items():
        for w in s["watch"]:
            d, r = w["delivery_from_send"], w["delivery_from_response"]
            rows.append([
                store, f"{w['watchers']}/{w.get('watcher_procs', 0) or 'same'}",
                f"{w['target_rate']:g}/{_f(w['achieved_rate'])}",
                _f(w["write"]["p50_ms"], 2), _f(w["write"]["p99_ms"], 2),
                _f(d["p50_ms"], 2), _f(d["p99_ms"], 2), _f(d["max_ms"], 1),
                _f(r["p50_ms"], 2), _f(r["p99_ms"], 2),
                f"{w['deliveries']}/{w['expected_deliveries']}",
                _pct(w, "server_cpu_s"), _pct(w, "etcd_cpu_s"), _pct(w, "loadgen_cpu_s"),
                _pct(w, "watchers_cpu_s"), _pct(w, "other_cpu_s"), _load(w),
            ])
    return text_table(
        ["store", "watchers/procs", "rate want/got", "write p50", "write p99", "deliv p50", "deliv p99",
         "deliv max", "resp->deliv p50", "resp->deliv p99", "delivered", "srv%", "etcd%", "loadgen%",
         "watchers%", "other%", "load avg"],
        rows,
    )


def churn_table(samples: list[dict[str, Any]], pods: int) -> str:
    mb = 1024 * 1024
    rows = [[
        str(s["updates"]), _f(s["updates_per_s"]), _f(s["db_bytes"] / mb), _f(s["db_wal_bytes"] / mb),
        _f((s["db_bytes"] + s["db_wal_bytes"] + s["db_shm_bytes"]) / mb), _f(s["list_ms"], 1),
    ] for s in samples]
    return text_table(["updates", "upd/s", "db MB", "wal MB", "total MB", f"list {pods} ms"], rows)


def workers_table(result: dict[str, Any]) -> str:
    rows = []
    for store, s in result["stores"].items():
        if "workers" not in s:
            continue
        med = s["workers"]["median"]
        fewest = med[min(med, key=int)]
        base, base_cost = fewest["ops_per_s"], fewest["busiest_cpu_ms_per_op"]
        for count, m in med.items():
            runs = "/".join(_f(r["ops_per_s"], 0) for r in s["workers"]["runs"][count])
            rows.append([store, count, _f(m["ops_per_s"]), runs, _f(m["ops_per_s"] / base if base else 0.0, 2),
                         _f(m["p50_ms"], 2), _f(m["p99_ms"], 2), _f(m["server_cpu_ms_per_op"], 3),
                         _f(m["busiest_cpu_ms_per_op"], 3),
                         _f(base_cost / m["busiest_cpu_ms_per_op"] if m["busiest_cpu_ms_per_op"] else 0.0, 2),
                         _pct(m, "server_cpu_s"), _pct(m, "loadgen_cpu_s"), _pct(m, "other_cpu_s")])
    return text_table(["store", "api workers", "creates/s (median)", "runs", "x of fewest", "p50 ms", "p99 ms",
                       "srv ms/op", "busiest ms/op", "capacity x", "srv%", "loadgen%", "other%"], rows)


def verdicts(result: dict[str, Any]) -> list[str]:
    out = []
    for store, s in result["stores"].items():
        med = (s.get("workers") or {}).get("median") or {}
        if "1" in med and "2" in med and med["1"]["ops_per_s"]:
            ratio = med["2"]["ops_per_s"] / med["1"]["ops_per_s"]
            ok = "MET" if ratio >= WORKERS_TARGET else "MISSED"
            out.append(f"{store} pod creates with 2 API workers: {ratio:.2f}x of 1 (medians), "
                       f"target >= {WORKERS_TARGET:g}x: {ok}")
            cap = med["1"]["busiest_cpu_ms_per_op"] / med["2"]["busiest_cpu_ms_per_op"]
            out.append(f"{store} capacity with 2 API workers (CPU per create of the busiest process, 1 over 2): "
                       f"{cap:.2f}x; what a box with a free core per process would give")
    sq = result["stores"].get("sqlite")
    if sq and sq["throughput"]:
        best = max(
            (v["ops_per_s"], f"{verb} x{n}") for n, verbs in sq["throughput"].items()
            for verb, v in verbs.items() if verb in ("create", "update")
        )
        ok = "MET" if best[0] >= WRITE_TARGET else "MISSED"
        out.append(f"SQLite pod writes: best {best[0]:.0f}/s ({best[1]}), target {WRITE_TARGET:.0f}/s: {ok}")
    for store, s in result["stores"].items():
        ll = s.get("list_load")
        if ll:
            ok = "MET" if ll["errors_5xx"] == 0 and ll["timeouts"] == 0 else "MISSED"
            out.append(f"{store} list load ({ll['listers']} listers x {ll['pods']} pods): "
                       f"{ll['errors_5xx']} 5xx, {ll['timeouts']} timeouts, target none: {ok}")
        for w in s["watch"]:
            p99 = w["delivery_from_send"]["p99_ms"]
            ok = "MET" if p99 < WATCH_TARGET_MS else "MISSED"
            out.append(
                f"{store} watch p99 ({w['watchers']} watchers in {_where(w)}, {w['target_rate']:g} writes/s, "
                f"load avg {_load(w) or '?'}): "
                f"{p99:.1f} ms, target < {WATCH_TARGET_MS:.0f} ms: {ok}"
            )
    return out


def print_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    measured = f" measuring bosun {m['bosun_commit']} from {m['bosun_tree']}" if "bosun_commit" in m else ""
    print(f"\nBosun API benchmark, commit {m['commit']}{measured}, {m['cpus']} CPUs ({m['cpu_model']}), "
          f"python {m['python']}")
    print(f"NOTE: {m['note']}; pods ~2.7 KB as sent, HTTPS + bearer token.")
    print("CPU columns are % of one core during the phase (200% = the whole box); other% is what")
    print("every other process on the machine used meanwhile (noise from work sharing the box).\n")
    pods = result["params"]["pods"]
    if any(s["throughput"] for s in result["stores"].values()):
        print(f"Verbs (N clients, each its own connection pool; list = all {pods} pods in one response)")
        print(verbs_table(result))
    if any(s["watch"] for s in result["stores"].values()):
        print(f"\nWatch fan-out (delays in ms; deliv = from the write's send to each watcher; watchers in "
              f"procs processes of their own, or the writers' one; loop speed {m['loop_mops']} M/s)")
        print(watch_table(result))
    first = next(iter(result["stores"].values())).get("workers")
    if first:
        print(f"\nAPI processes (--api-workers): {first['pods']} pod creates by {first['clients']} clients, a fresh "
              f"server per run; loop speed {m['loop_mops']} M/s")
        print(workers_table(result))
        print("busiest ms/op: CPU per create of the busiest API process; capacity x: the fewest-process "
              "figure of it over this one")
    sq = result["stores"].get("sqlite") or {}
    if sq.get("list_load"):
        ll = sq["list_load"]
        print(f"\nList load ({ll['listers']} listers at once, each list = all {ll['pods']} pods)")
        print(text_table(
            ["store", "lists", "ok/s", "p50 ms", "p99 ms", "max ms", "srv ms/list", "srv%", "loadgen%", "other%",
             "5xx", "timeouts"],
            [["sqlite", str(ll["lists"]), _f(ll["ops_per_s"]), _f(ll["p50_ms"], 2), _f(ll["p99_ms"], 2),
              _f(ll["max_ms"], 1), _f(ll["server_cpu_s"] * 1000 / max(1, ll["lists"]), 1),
              _pct(ll, "server_cpu_s"), _pct(ll, "loadgen_cpu_s"), _pct(ll, "other_cpu_s"),
              str(ll["errors_5xx"]), str(ll["timeouts"])]],
        ))
    if sq.get("churn"):
        print(f"\nSQLite under churn ({result['params']['pods']} pods updated over and over)")
        print(churn_table(sq["churn"], result["params"]["pods"]))
    print()
    for line in verdicts(result):
        print(line)
    for store, st in result["stores"].items():
        failed = sum(int(v["list"].get("errors", 0)) for v in st["throughput"].values())
        if failed:
            print(f"MISSED {store}: {failed} lists failed (target: none), e.g. "
                  + "; ".join(next(v["list"].get("error_examples", []) for v in st["throughput"].values()
                                   if v["list"].get("errors"))))
        n = sum(int(v["update"].get("conflicts", 0)) for v in st["throughput"].values())
        n += sum(int(w.get("conflicts", 0)) for w in st["watch"])
        n += int((st.get("churn") or [{}])[-1].get("conflicts", 0))
        if n:
            print(f"NOTE {store}: {n} PUTs got 409 Conflict (another writer, e.g. the scheduler, touched the pod;"
                  " re-read and retried)")
