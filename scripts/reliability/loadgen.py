#!/usr/bin/env python3
"""Overload, abandonment and connection attacks against a running Sluice worker.

Standard library only (asyncio, raw HTTP/1.1 on one connection per request), so the same tool
measures any build of the worker. Every mode prints one JSON object on stdout; the shell scripts
beside it (scripts/overload.sh, scripts/idle-flood.sh, scripts/faults.sh) start the worker and
call it.

Modes:
  overload    open-loop Poisson arrivals of sync (or async) invocations at --rate for --duration;
              reports admitted latency percentiles, the 429 share and Retry-After values, and for
              async submissions how every accepted invocation ended.
  abandon     --count sync invocations whose clients hang up after --after-ms, then fresh calls:
              how many abandoned invocations still ran and how long the fresh calls took.
  idle-flood  --conns idle TCP connections; how many the worker still holds after 1, 5, 15, ...
              seconds, and /healthz latency meanwhile.
  slow        a slow-loris head and a slow-loris body: when (and how) the worker cuts them off.
"""
import argparse
import asyncio
import json
import random
import re
import sys
import time
from urllib.parse import urlparse


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return round(s[k], 1)


class Target:
    def __init__(self, url, token):
        u = urlparse(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        self.token = token

    def head(self, method, path, length, extra=""):
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        return (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
        ).encode()


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, raw
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while b"\r\n" in rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.strip() or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, headers, body


async def request(t, method, path, body=b"", timeout=120.0):
    """One request on a fresh connection: (status, headers, body, seconds); status 0 = no answer."""
    start = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(t.host, t.port), timeout)
        writer.write(t.head(method, path, len(body)) + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), timeout)
        status, headers, data = parse_response(raw)
    except (OSError, asyncio.TimeoutError) as e:
        status, headers, data = 0, {}, str(e).encode()
    finally:
        if writer is not None:
            writer.close()
    return status, headers, data, time.monotonic() - start


def error_kind(body):
    try:
        msg = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        msg = body.decode("utf-8", "replace")[:80]
    return re.sub(r"\d+", "N", msg)[:100]


async def overload(a, t):
    path = f"/v1/functions/{a.function}/" + ("invoke-async" if a.mode == "async" else "invoke")
    body = a.input.encode()
    rng = random.Random(a.seed)
    results, tasks = [], []
    start = time.monotonic()
    at = 0.0
    while True:
        at += rng.expovariate(a.rate)
        if at >= a.duration:
            break
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

        async def one():
            results.append(await request(t, "POST", path, body, a.client_timeout))

        tasks.append(asyncio.ensure_future(one()))
    sent_s = time.monotonic() - start
    await asyncio.gather(*tasks)
    by_status = {}
    for s, _, _, _ in results:
        by_status[str(s)] = by_status.get(str(s), 0) + 1
    admitted = [r for r in results if r[0] in (200, 202)]
    refused = [r for r in results if r[0] == 429]
    retry = [int(h.get("retry-after", "0")) for _, h, _, _ in refused]
    out = {
        "mode": a.mode,
        "offered_rate": a.rate,
        "achieved_rate": round(len(results) / sent_s, 1),
        "sent": len(results),
        "by_status": by_status,
        "share_429": round(len(refused) / max(1, len(results)), 3),
        "retry_after_s": {"min": min(retry, default=None), "p50": pct(retry, 50),
                          "max": max(retry, default=None)},
        "errors": sorted({error_kind(b) for s, _, b, _ in results if s not in (200, 202, 429)}),
    }
    if a.mode == "sync":
        lat = [r[3] * 1e3 for r in admitted]
        out["admitted_ms"] = {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": pct(lat, 100)}
        queue = [float(h["x-sluice-queue-ms"]) for _, h, _, _ in admitted if "x-sluice-queue-ms" in h]
        out["admitted_queue_ms"] = {"p50": pct(queue, 50), "p99": pct(queue, 99),
                                    "max": pct(queue, 100)}
        out["goodput_per_s"] = round(len(admitted) / (time.monotonic() - start), 1)
        return out
    ids = [json.loads(b)["id"] for _, _, b, _ in admitted]
    out.update(await settle(t, ids, a.settle_timeout))
    return out


async def settle(t, ids, limit):
    """Polls accepted asynchronous invocations until every one is done (or `limit` s pass)."""
    records, deadline = {}, time.monotonic() + limit
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        sem = asyncio.Semaphore(64)

        async def get(i):
            async with sem:
                return i, await request(t, "GET", f"/v1/invocations/{i}", b"", 30)

        nxt = []
        for i, (s, _, b, _) in await asyncio.gather(*(get(i) for i in pending)):
            rec = json.loads(b) if s == 200 else None
            if rec and rec.get("done"):
                records[i] = rec
            else:
                nxt.append(i)
        pending = nxt
        if pending:
            await asyncio.sleep(1.0)
    ended = {}
    for r in records.values():
        key = r["status"] if r["status"] == "succeeded" else "failed: " + error_kind(
            json.dumps({"error": {"message": r.get("error") or ""}}).encode())
        ended[key] = ended.get(key, 0) + 1
    waits = [r["finished_ms"] - r["accepted_ms"] for r in records.values()
             if r["status"] == "succeeded"]
    return {"accepted": len(ids), "ended": ended, "not_done": len(pending),
            "accept_to_finish_ms": {"p50": pct(waits, 50), "p99": pct(waits, 99)}}


async def metric(t, name, labels):
    s, _, b, _ = await request(t, "GET", "/metrics", b"", 30)
    total = 0.0
    for line in b.decode().splitlines():
        if line.startswith(name + "{") and all(l in line for l in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def abandon(a, t):
    path = f"/v1/functions/{a.function}/invoke"
    body = a.input.encode()
    ok_before = await metric(t, "sluice_invocations_total", [f'function="{a.function}"', 'outcome="ok"'])

    async def hang_up():
        try:
            r, w = await asyncio.open_connection(t.host, t.port)
            w.write(t.head("POST", path, len(body)) + body)
            await w.drain()
            try:
                await asyncio.wait_for(r.read(-1), a.after_ms / 1e3)
                w.close()
                return "answered"
            except asyncio.TimeoutError:
                w.close()
                return "abandoned"
        except OSError:
            return "refused"

    kinds = await asyncio.gather(*(hang_up() for _ in range(a.count)))
    start = time.monotonic()
    fresh = []
    for _ in range(a.probe):
        s, _, _, secs = await request(t, "POST", path, body, a.client_timeout)
        fresh.append({"status": s, "ms": round(secs * 1e3, 1)})
    drained_s = None
    while time.monotonic() - start < a.client_timeout:
        s, _, b, _ = await request(t, "GET", "/v1/status", b"", 30)
        if s == 200 and json.loads(b).get("queued") == 0:
            drained_s = round(time.monotonic() - start, 1)
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)
    ok_after = await metric(t, "sluice_invocations_total", [f'function="{a.function}"', 'outcome="ok"'])
    return {
        "clients": a.count,
        "abandoned": kinds.count("abandoned"),
        "answered_before_hang_up": kinds.count("answered"),
        "ran_ok": int(ok_after - ok_before) - sum(1 for f in fresh if f["status"] == 200),
        "fresh_calls": fresh,
        "queue_empty_after_s": drained_s,
    }


async def idle_flood(a, t):
    conns, opened, failed = [], 0, 0
    for _ in range(a.conns):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(t.host, t.port), 5)
            conns.append((r, w))
            opened += 1
        except (OSError, asyncio.TimeoutError):
            failed += 1
    start = time.monotonic()
    closed_at = [None] * len(conns)

    async def watch(i, r):
        try:
            data = await r.read(-1)
        except OSError:
            data = b""
        closed_at[i] = (time.monotonic() - start, data[:12].decode("latin-1"))

    watchers = [asyncio.ensure_future(watch(i, r)) for i, (r, _) in enumerate(conns)]
    probes, marks, held = [], sorted(set(a.marks + [a.hold])), {}
    next_probe = 0.0
    while time.monotonic() - start < a.hold:
        now = time.monotonic() - start
        if now >= next_probe:
            s, _, _, secs = await request(t, "GET", "/healthz", b"", a.probe_timeout)
            probes.append((s, secs * 1e3))
            next_probe = now + a.probe_interval
        for m in marks:
            if m not in held and time.monotonic() - start >= m:
                held[m] = sum(1 for c in closed_at if c is None)
        await asyncio.sleep(0.05)
    for m in marks:
        held.setdefault(m, sum(1 for c in closed_at if c is None))
    first_answers = {}
    for c in closed_at:
        if c is not None:
            k = c[1].split("\r")[0] or "closed without an answer"
            first_answers[k] = first_answers.get(k, 0) + 1
    for w in watchers:
        w.cancel()
    for _, w in conns:
        w.close()
    ok = [ms for s, ms in probes if s == 200]
    return {
        "connections_requested": a.conns,
        "opened": opened,
        "connect_failed": failed,
        "still_open_after_s": {f"{k:g}": v for k, v in sorted(held.items())},
        "answers_on_closed": first_answers,
        "healthz": {"probes": len(probes), "ok": len(ok), "p50_ms": pct(ok, 50),
                    "max_ms": pct(ok, 100),
                    "failed": len(probes) - len(ok)},
    }


async def slow(a, t):
    async def drip(payload, chunk_every):
        start = time.monotonic()
        try:
            r, w = await asyncio.open_connection(t.host, t.port)
        except OSError as e:
            return {"error": str(e)}
        reading = asyncio.ensure_future(r.read(-1))
        sent = 0
        for b in payload:
            if reading.done():
                break
            try:
                w.write(bytes([b]))
                await w.drain()
                sent += 1
            except OSError:
                break
            done, _ = await asyncio.wait([reading], timeout=chunk_every)
            if time.monotonic() - start > a.limit:
                break
        try:
            raw = await asyncio.wait_for(reading, max(0.1, a.limit - (time.monotonic() - start)))
        except (asyncio.TimeoutError, OSError):
            raw = None
        w.close()
        secs = round(time.monotonic() - start, 1)
        if raw is None:
            return {"cut_off": False, "held_s": secs, "bytes_sent": sent}
        status = parse_response(raw)[0] if raw else 0
        return {"cut_off": True, "after_s": secs, "status": status or "closed", "bytes_sent": sent}

    head = t.head("POST", f"/v1/functions/{a.function}/invoke", 64)
    return {
        "slow_head": await drip(head, a.every),
        "slow_body": await drip_body(t, a, head),
    }


async def drip_body(t, a, head):
    """Sends the head at once, then the 64-byte body one byte every --every seconds."""
    start = time.monotonic()
    try:
        r, w = await asyncio.open_connection(t.host, t.port)
    except OSError as e:
        return {"error": str(e)}
    w.write(head)
    await w.drain()
    reading = asyncio.ensure_future(r.read(-1))
    sent = 0
    while sent < 64 and time.monotonic() - start < a.limit and not reading.done():
        await asyncio.wait([reading], timeout=a.every)
        try:
            w.write(b" ")
            await w.drain()
            sent += 1
        except OSError:
            break
    try:
        raw = await asyncio.wait_for(reading, max(0.1, a.limit - (time.monotonic() - start)))
    except (asyncio.TimeoutError, OSError):
        raw = None
    w.close()
    secs = round(time.monotonic() - start, 1)
    if raw is None:
        return {"cut_off": False, "held_s": secs, "bytes_sent": sent}
    return {"cut_off": True, "after_s": secs,
            "status": (parse_response(raw)[0] if raw else 0) or "closed", "bytes_sent": sent}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["overload", "abandon", "idle-flood", "slow"])
    p.add_argument("--url", required=True)
    p.add_argument("--token")
    p.add_argument("--function", default="s50")
    p.add_argument("--input", default='{"do":"sleep","seconds":0.05}')
    p.add_argument("--mode", default="sync", choices=["sync", "async"])
    p.add_argument("--rate", type=float, default=400)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--client-timeout", type=float, default=120)
    p.add_argument("--settle-timeout", type=float, default=300)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--after-ms", type=float, default=200)
    p.add_argument("--probe", type=int, default=5)
    p.add_argument("--conns", type=int, default=4000)
    p.add_argument("--hold", type=float, default=60)
    p.add_argument("--marks", type=float, nargs="*", default=[1, 5, 15, 30])
    p.add_argument("--probe-interval", type=float, default=1.0)
    p.add_argument("--probe-timeout", type=float, default=5.0)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--limit", type=float, default=90)
    a = p.parse_args()
    t = Target(a.url, a.token)
    run = {"overload": overload, "abandon": abandon, "idle-flood": idle_flood, "slow": slow}
    out = asyncio.run(run[a.command](a, t))
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
