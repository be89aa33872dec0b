"""The printed tables (the JSON file holds the same numbers and more)."""

from __future__ import annotations

from typing import Any

WRITE_TARGET = 2000.0  # pod writes/s on SQLite (the target)
WATCH_TARGET_MS = 50.0  # p99 write-to-watch delivery


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def _f(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def verbs_table(result: dict[str, Any]) -> str:
    rows = []
    for store, s in result["stores"].items():
        for n, verbs in s["throughput"].items():
            for verb, v in verbs.items():
                rows.append([
                    store, n, verb, _f(v["ops_per_s"]), _f(v["p50_ms"], 2), _f(v["p99_ms"], 2),
                    _f(v["max_ms"], 1), _f(v.get("server_cpu_ms_per_op", 0.0), 3),
                    _f(100 * v["server_cpu_s"] / v["wall_s"], 0), _f(100 * v["loadgen_cpu_s"] / v["wall_s"], 0),
                ])
    return _table(
        ["store", "clients", "verb", "ops/s", "p50 ms", "p99 ms", "max ms", "srv cpu ms/op", "srv cpu%",
         "loadgen cpu%"],
        rows,
    )


def watch_table(result: dict[str, Any]) -> str:
    rows = []
    for store, s in result["stores"].items():
        for w in s["watch"]:
            d, r = w["delivery_from_send"], w["delivery_from_response"]
            rows.append([
                store, str(w["watchers"]), f"{w['target_rate']:g}/{_f(w['achieved_rate'])}",
                _f(w["write"]["p50_ms"], 2), _f(w["write"]["p99_ms"], 2),
                _f(d["p50_ms"], 2), _f(d["p99_ms"], 2), _f(d["max_ms"], 1),
                _f(r["p50_ms"], 2), _f(r["p99_ms"], 2),
                f"{w['deliveries']}/{w['expected_deliveries']}",
                _f(100 * w["server_cpu_s"] / w["wall_s"], 0),
            ])
    return _table(
        ["store", "watchers", "rate want/got", "write p50", "write p99", "deliv p50", "deliv p99",
         "deliv max", "resp->deliv p50", "resp->deliv p99", "delivered", "srv cpu%"],
        rows,
    )


def churn_table(samples: list[dict[str, Any]]) -> str:
    mb = 1024 * 1024
    rows = [[
        str(s["updates"]), _f(s["updates_per_s"]), _f(s["db_bytes"] / mb), _f(s["db_wal_bytes"] / mb),
        _f((s["db_bytes"] + s["db_wal_bytes"] + s["db_shm_bytes"]) / mb), _f(s["list_ms"], 1),
    ] for s in samples]
    return _table(["updates", "upd/s", "db MB", "wal MB", "total MB", "list 1000 ms"], rows)


def verdicts(result: dict[str, Any]) -> list[str]:
    out = []
    sq = result["stores"].get("sqlite")
    if sq:
        best = max(
            (v["ops_per_s"], f"{verb} x{n}") for n, verbs in sq["throughput"].items()
            for verb, v in verbs.items() if verb in ("create", "update")
        )
        ok = "MET" if best[0] >= WRITE_TARGET else "MISSED"
        out.append(f"SQLite pod writes: best {best[0]:.0f}/s ({best[1]}), target {WRITE_TARGET:.0f}/s: {ok}")
    for store, s in result["stores"].items():
        for w in s["watch"]:
            p99 = w["delivery_from_send"]["p99_ms"]
            ok = "MET" if p99 < WATCH_TARGET_MS else "MISSED"
            out.append(
                f"{store} watch p99 ({w['watchers']} watchers, {w['target_rate']:g} writes/s): "
                f"{p99:.1f} ms, target < {WATCH_TARGET_MS:.0f} ms: {ok}"
            )
    return out


def print_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\nBosun API benchmark, commit {m['commit']}, {m['cpus']} CPUs ({m['cpu_model']}), "
          f"python {m['python']}")
    print(f"NOTE: {m['note']}; pods ~2.7 KB as sent, HTTPS + bearer token.\n")
    print("Verbs (N clients, each its own connection pool; list = all 1000 pods in one response)")
    print(verbs_table(result))
    print("\nWatch fan-out (delays in ms; deliv = from the write's send to each watcher)")
    print(watch_table(result))
    sq = result["stores"].get("sqlite") or {}
    if sq.get("churn"):
        print(f"\nSQLite under churn ({result['params']['pods']} pods updated over and over)")
        print(churn_table(sq["churn"]))
    print()
    for line in verdicts(result):
        print(line)
