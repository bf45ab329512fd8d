"""The targets of SPEC §4 and §10 (P1–P9), checked against a run's results, and the printed table."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    id: str
    what: str
    get: Callable[[dict[str, Any]], float | None]
    op: str  # ">=" or "<="
    limit: float
    #: ``False``: reported against the limit but not a gate (SPEC names another pool as the reference).
    gated: bool = True

    def check(self, results: dict[str, Any]) -> dict[str, Any]:
        try:
            value = self.get(results)
        except (KeyError, TypeError):
            value = None
        met = None
        if value is not None and not math.isnan(value):
            met = value >= self.limit if self.op == ">=" else value <= self.limit
        return {
            "id": self.id,
            "what": self.what,
            "value": value,
            "op": self.op,
            "limit": self.limit,
            "met": met,
            "gated": self.gated,
        }


def _pool(pool: str, section: str, key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        value = r["pools"].get(pool, {}).get(section, {}).get(key)
        return None if value is None else float(value)

    return get


def _pool_targets(pool: str) -> list[Target]:
    reference = pool == "prefork"
    ratios = lambda key: _pool(pool, "ratios", key)  # noqa: E731
    out = []
    for name in ("swarm30", "swarm2x"):
        out.append(
            Target(
                "P1a", f"{pool}: throughput {name} / group", ratios(f"throughput.{name}/group"), ">=", 0.9, reference
            )
        )
    for name in ("swarm30", "swarm2x"):
        out.append(Target("P1b", f"{pool}: CPU per member {name} / group", ratios(f"cpu.{name}/group"), "<=", 1.3))
    key = "throughput.swarm_10ms_k4/naive_10ms_k4"
    out.append(Target("P1c", f"{pool}: 10 ms members, swarm K=4 / naive loop K=4", ratios(key), ">=", 0.95, reference))
    key = "handoff.median/roundtrip"
    out.append(Target("P1d", f"{pool}: hand-off median / .delay().get() median", ratios(key), "<=", 1.5, reference))
    key = "marginal_mageflow-worker_per_member"
    out.append(Target("P2", f"{pool}: state round trips per member (worker)", _pool(pool, "round_trips", key), "<=", 2))
    for name in ("swarm30", "swarm2x"):
        key = f"commands_extra.{name}-group"
        out.append(Target("P2", f"{pool}: Redis commands per member, {name} - group", ratios(key), "<=", 20))
    out.append(Target("P6", f"{pool}: 200 swarms x 10 / one group, throughput", ratios(_MANY), ">=", 0.9, reference))
    for name in ("swarm30", "swarm2x"):
        out.append(Target("P7", f"{pool}: throughput {name} / group", ratios(f"throughput.{name}/group"), ">=", 1.0))
        out.append(Target("P7", f"{pool}: CPU per member {name} / group", ratios(f"cpu.{name}/group"), "<=", 1.1))
    return out


_MANY = "throughput.many_small/group"


def _at(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        value: Any = r
        for key in path:
            value = value[key]
        return None if value is None else float(value)

    return get


def _v3_targets() -> list[Target]:
    """SPEC §10 beyond the per-pool rows: the reaper (P5), pools (P8), rates (F3), streaming (P9)."""
    return [
        Target("P5", "reaper tick, nothing due: wall ms", _at("reaper", "poll_tick_wall_ms_median"), "<=", 50),
        Target(
            "P5", "reaper tick, nothing due: Redis CPU ms", _at("reaper", "poll_tick_redis_cpu_ms_median"), "<=", 20
        ),
        Target(
            "P5", "reaper sweep page (one per interval): wall ms", _at("reaper", "sweep_page_wall_ms_median"), "<=", 50
        ),
        Target("P5", "reaper sweep page: Redis CPU ms", _at("reaper", "sweep_page_redis_cpu_ms_median"), "<=", 20),
        Target("P8", "pooled member: extra state round trips", _at("flow", "round_trips_extra"), "<=", 1),
        Target("P8", "same, pool of 4 the swarm waits on", _at("flow", "round_trips_extra_busy"), "<=", 1),
        Target("P8", "10-member swarm behind a big one / alone", _at("flow", "fairness", "shared_over_alone"), "<=", 3),
        Target("P8", "pool tokens in use, peak sampled (limit 4)", _at("flow", "fairness", "peak_in_use"), "<=", 4),
        Target(
            "F3",
            "rate: median delay of a member after its slot, ms",
            _at("flow", "rate", "slot_delay_ms_median"),
            "<=",
            100,
        ),
        Target("P9", "streamed swarm: client peak RSS, MiB", _at("stream", "rss_peak_mib"), "<=", 200),
        Target("P9", "streamed swarm: script cost at n / at 1,000", _at("stream", "script_cost_ratio"), "<=", 1.2),
    ]


def targets(pools: list[str]) -> list[Target]:
    """SPEC §4 as checks. P1a, P1c and P1d gate on prefork -c2 (the reference worker); the other pools
    are reported against the same limits."""
    out = [t for pool in pools for t in _pool_targets(pool)]
    scaling = lambda key: lambda r: r["scaling"]["ratio"][key]  # noqa: E731
    bulk = lambda key: lambda r: r["bulk"][key]  # noqa: E731
    out += [
        Target("P3", "script CPU per member, largest / smallest swarm", scaling("script_us_per_member"), "<=", 1.2),
        Target("P3", "state commands per member, largest / smallest swarm", scaling("commands_per_member"), "<=", 1.2),
        Target(
            "P4", "create the bulk swarm (build + serialize + create), s", bulk("build_serialize_create_s"), "<=", 10
        ),
        Target("P4", "Redis memory of the created swarm / members' JSON", bulk("memory_ratio"), "<=", 2.0),
        *_v3_targets(),
    ]
    return out


RATIO_ROWS = [
    ("throughput.chord/group", "throughput chord / group"),
    ("throughput.swarm30/group", "throughput swarm(30) / group"),
    ("throughput.swarm2x/group", "throughput swarm(2x pool) / group"),
    (_MANY, "throughput 200 swarms x 10 / group"),
    ("cpu.chord/group", "CPU/member chord / group"),
    ("cpu.swarm30/group", "CPU/member swarm(30) / group"),
    ("cpu.swarm2x/group", "CPU/member swarm(2x pool) / group"),
    ("cpu.many_small/group", "CPU/member 200 swarms x 10 / group"),
    ("commands_extra.swarm30-group", "Redis cmds/member swarm(30) - group"),
    ("commands_extra.swarm2x-group", "Redis cmds/member swarm(2x) - group"),
    ("throughput.swarm_10ms_k4/naive_10ms_k4", "10ms: swarm K=4 / naive loop K=4"),
    ("throughput.group_10ms/naive_10ms_k4", "10ms: group / naive loop K=4"),
    ("handoff.median/roundtrip", "hand-off median / .delay().get() median"),
    ("handoff.p95/roundtrip", "hand-off p95 / .delay().get() p95"),
]

RT_ROWS = [
    ("marginal_mageflow-worker_per_member", "state round trips/member, worker (marginal)"),
    ("mageflow-worker_per_member", "state round trips/member, worker (all)"),
    ("mageflow-client_per_member", "state round trips/member, client (all)"),
    ("mageflow-worker-background_per_member", "  + worker timers (reaper, leases)/member"),
    ("marginal_lua_per_member", "commands run inside scripts/member (marginal)"),
]

_PARTS = (
    ("client", "client"),
    ("worker_main", "worker main process"),
    ("worker_children", "worker pool processes"),
    ("redis_broker", "redis broker+backend"),
    ("redis_state", "redis state"),
)
ABS_ROWS = [
    ("group", "throughput_per_s", 1, "group tasks/s"),
    ("swarm30", "throughput_per_s", 1, "swarm(30) tasks/s"),
    ("group", "cpu_us_per_member", 1, "group CPU us/member"),
    *[("group", f"cpu_us_per_member.{k}", 1, f"  {label}") for k, label in _PARTS],
    ("swarm30", "cpu_us_per_member", 1, "swarm(30) CPU us/member"),
    *[("swarm30", f"cpu_us_per_member.{k}", 1, f"  {label}") for k, label in _PARTS],
    ("group", "commands_per_member", 1, "group Redis cmds/member"),
    ("swarm30", "commands_per_member", 1, "swarm(30) Redis cmds/member"),
    ("naive_10ms_k4", "throughput_per_s", 1, "10ms naive loop K=4 tasks/s"),
    ("swarm_10ms_k4", "throughput_per_s", 1, "10ms swarm K=4 tasks/s"),
    ("naive_10ms_k4", "slot_gap_median_ms", 1, "10ms naive loop: slot idle between tasks, ms"),
    ("swarm_10ms_k4", "slot_gap_median_ms", 1, "10ms swarm K=4: slot idle between tasks, ms"),
    ("handoff", "median_s", 1000, "hand-off median ms"),
    ("roundtrip", "median_s", 1000, ".delay().get() median ms"),
]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    pools = list(results["pools"])
    reps = results["sizes"]["reps"]
    lines = [machine_line(results), ""]
    lines.append(f"Paired ratios, swarm vs plain Celery on the same worker (median of {reps} interleaved reps)")
    lines.append(f"{'':44}" + "".join(f"{p:>10}" for p in pools))
    for key, label in RATIO_ROWS:
        lines.append(f"{label:44}" + "".join(f"{_fmt(results['pools'][p]['ratios'].get(key)):>10}" for p in pools))
    for rt_key, label in RT_ROWS:
        cells = [results["pools"][p]["round_trips"].get(rt_key) for p in pools]
        lines.append(f"{label:44}" + "".join(f"{_fmt(c):>10}" for c in cells))
    lines.append("")
    lines.append("Absolute values (medians; they drift run to run, the ratios above are what count)")
    for scen, key, scale, label in ABS_ROWS:
        cells = [results["pools"][p]["summary"].get(scen, {}).get(key) for p in pools]
        digits = 2 if key.endswith("_ms") or key.endswith("_s") else 1
        lines.append(f"{label:44}" + "".join(f"{_fmt(None if c is None else c * scale, digits):>10}" for c in cells))
    lines += ["", *_scaling_lines(results), "", *_v3_lines(results), "", *_target_lines(results)]
    return "\n".join(lines)


def machine_line(results: dict[str, Any]) -> str:
    """How fast this machine is, to compare runs: plain Celery's CPU per no-op task (group, prefork)."""
    meta = results["meta"]
    group = results["pools"].get("prefork", {}).get("summary", {}).get("group", {})
    speed = meta.get("speed", {})
    return (
        f"Machine speed: plain group CPU {_fmt(group.get('cpu_us_per_member'), 0)} us/member on prefork "
        f"(docs' reference run 1745; a 4x slower machine 6770); {meta['nproc']} cores, {meta['cpu']}, "
        f"load {meta['loadavg'][0]:.2f} at the start\n"
        f"  Python loop {_fmt(speed.get('python_ns_per_op'), 0)} ns/op; Redis PING round trip "
        f"{_fmt(speed.get('roundtrip_cpu_us'), 1)} us client CPU, {_fmt(speed.get('roundtrip_wall_us'), 1)} us wall"
    )


def _v3_lines(results: dict[str, Any]) -> list[str]:
    lines = ["Scale and flow control (SPEC §10)"]
    if "reaper" in results:
        r = results["reaper"]
        lines += [
            f"  reaper, {r['open']} idle open + {r['finished']} finished swarms in Redis ({r['dbsize']} keys):",
            f"    tick (the due index), nothing due: {_fmt(r['poll_tick_wall_ms_median'])} ms wall"
            f" (max {_fmt(r['poll_tick_wall_ms_max'])}), {_fmt(r['poll_tick_redis_cpu_ms_median'])} ms Redis CPU;"
            f" one swarm due: {_fmt(r['due_poll_tick_wall_ms'])} ms, acted: {r['due_poll_acted']}",
            f"    sweep page (200 swarms, once per interval): {_fmt(r['sweep_page_wall_ms_median'])} ms wall,"
            f" {_fmt(r['sweep_page_redis_cpu_ms_median'])} ms Redis CPU",
            f"    reap_once (a full pass, `celery swarm reap`): {_fmt(r['tick_wall_ms_median'], 0)} ms wall,"
            f" {_fmt(r['tick_redis_cpu_ms_median'], 0)} ms Redis CPU; acted on the due swarm: {r['due_acted']}",
        ]
    if "stream" in results:
        st = results["stream"]
        lines.append(
            f"  streamed swarm, {st['n']} members in batches of {st['batch']}: {_fmt(st['add_wall_s'], 1)} s"
            f" ({_fmt(st['members_per_s'], 0)}/s), client RSS {_fmt(st['rss_start_mib'], 0)} -> peak"
            f" {_fmt(st['rss_peak_mib'], 0)} MiB, state Redis {_fmt(st['state_used_memory_mib'], 0)} MiB; script"
            f" {_fmt(st['script_us_per_member_big'], 1)} us/member vs {_fmt(st['script_us_per_member_small'], 1)}"
            f" at 1,000"
        )
    if "flow" in results:
        f = results["flow"]
        fair, rate = f["fairness"], f["rate"]
        lines.append(
            f"  pooled member ({f['worker']}): {_fmt(f['round_trips_pooled'])} state round trips vs"
            f" {_fmt(f['round_trips_plain'])} unpooled; {_fmt(f.get('round_trips_pooled_busy'))} on a pool of 4"
        )
        lines.append(
            f"  fairness, pool of {fair['pool_limit']}: {fair['n_small']}-member swarm alone"
            f" {_fmt(1000 * min(fair['alone_s']), 0)}-{_fmt(1000 * max(fair['alone_s']), 0)} ms, behind"
            f" {fair['n_big']} members {_fmt(1000 * min(fair['shared_s']), 0)}-{_fmt(1000 * max(fair['shared_s']), 0)}"
            f" ms; peak in use {fair['peak_in_use']} over {fair['samples']} samples"
        )
        lines.append(
            f"  rate {rate['per_s']}/s, {rate['n']} members: achieved {_fmt(rate['achieved_per_s'])}/s; start after its"
            f" slot median {_fmt(rate['slot_delay_ms_median'], 1)} ms, max {_fmt(rate['slot_delay_ms_max'], 1)} ms;"
            f" drift from the ideal schedule median {_fmt(rate['late_ms_median'], 1)} ms,"
            f" max {_fmt(rate['late_ms_max'], 1)} ms"
        )
    return lines if len(lines) > 1 else [*lines, "  (skipped)"]


def _scaling_lines(results: dict[str, Any]) -> list[str]:
    lines = ["Scaling"]
    if not results["bulk"]:
        return [*lines, "  (skipped)"]
    for n, row in results["e2e"].items():
        lines.append(
            f"  end-to-end prefork, {n:>7} members: group {_fmt(row['group_per_s'], 0)}/s, "
            f"swarm(30) {_fmt(row['swarm_per_s'], 0)}/s, ratio {_fmt(row['ratio'])}"
        )
    for n, row in results["scaling"]["by_n"].items():
        lines.append(
            f"  scripts driven directly, {n:>7} members: {_fmt(row['script_us_per_member'], 1)} us script CPU, "
            f"{_fmt(row['redis_cpu_us_per_member'], 1)} us redis CPU, "
            f"{_fmt(row['commands_per_member'], 1)} cmds per member"
        )
    ratio = results["scaling"]["ratio"]
    lines.append(
        f"  largest/smallest: script CPU {_fmt(ratio['script_us_per_member'])}, "
        f"commands {_fmt(ratio['commands_per_member'])}"
    )
    bulk = results["bulk"]
    lines.append(
        f"  create {bulk['n']} members: build {_fmt(bulk['build_s'])} s + swarm() {_fmt(bulk['swarm_s'])} s + "
        f"create {_fmt(bulk['create_s'])} s = {_fmt(bulk['build_serialize_create_s'])} s "
        f"(start {_fmt(bulk['start_s'])} s); "
        f"memory {_fmt(bulk['bytes_per_member'], 0)} B/member vs JSON {_fmt(bulk['json_bytes_per_member'], 0)} B "
        f"= {_fmt(bulk['memory_ratio'])}x"
    )
    return lines


def _target_lines(results: dict[str, Any]) -> list[str]:
    lines = ["Targets (SPEC §4; '(info)': reported, the gate is the prefork reference worker)"]
    for t in results["targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]] + ("" if t["gated"] else " (info)")
        lines.append(f"  {t['id']:4} {t['what']:58} {_fmt(t['value']):>8} {t['op']} {t['limit']:<5} {mark}")
    return lines
