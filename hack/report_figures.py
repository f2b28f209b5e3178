"""PNG figures for hack/report, drawn only from the JSON artifacts of the run (matplotlib, Agg).

Each function takes the parsed JSON of one benchmark or test and the figures directory, writes
one PNG and returns its file name, or None when the run produced no data for it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

VERBS = ("ADD", "DEL", "ADD+DEL")
DPI = 110
DECADES = (1, 10, 100, 1000, 10000)
COARSE_MS: tuple[float, ...] = tuple(d * m for d in DECADES for m in (1, 2, 5))
FINE_MS = tuple(d * m for d in DECADES for m in (1, 1.5, 2, 3, 4, 5, 6, 7, 8))


def _log_ms_axis(ax: Any, values: list[float], axis: str = "x") -> None:
    """Log axis in ms with plain-number ticks (1, 2, 5, 10, ...) spanning ``values``."""
    low, high = min(values), max(values)
    ticks = [t for t in COARSE_MS if low / 1.3 <= t <= high * 1.3]
    if len(ticks) < 3:
        ticks = [t for t in FINE_MS if low / 1.3 <= t <= high * 1.3]
    if axis == "x":
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(low / 1.3, high * 1.3)
    else:
        ax.set_yscale("log")
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(low / 1.3, high * 1.3)


def _save(fig: Any, out: Path, name: str, layout_done: bool = False) -> str:
    if not layout_done:
        fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return name


def sampled_rows(cni: dict[str, Any] | None, dhcp: bool) -> dict[str, dict[str, Any]]:
    """bench-cni rows that carry raw samples; ``dhcp`` selects the DHCP rows or the others."""
    rows = (cni or {}).get("rows", {})
    return {
        name: row for name, row in rows.items() if "samples_ms" in row and ("dhcp" in name) == dhcp
    }


def _box_with_points(ax: Any, data: list[list[float]], labels: list[str], seed: int) -> None:
    """Horizontal box plot (whiskers 5th-95th percentile) with every sample drawn as a dot."""
    ax.boxplot(
        data,
        vert=False,
        whis=(5, 95),
        showfliers=False,
        widths=0.55,
        medianprops={"color": "black", "linewidth": 1.6},
    )
    rng = random.Random(seed)
    for i, values in enumerate(data, start=1):
        ax.scatter(
            values,
            [i + rng.uniform(-0.18, 0.18) for _ in values],
            s=9,
            alpha=0.55,
            zorder=3,
        )
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.grid(axis="x", which="both", alpha=0.3)


def cni_distributions(cni: dict[str, Any] | None, out: Path) -> str | None:
    """Per-invocation latency of every host-local row, one panel per verb (log scale)."""
    rows = sampled_rows(cni, dhcp=False)
    if not rows:
        return None
    names = list(rows)
    labels = [f"{n} (n={rows[n]['n']})" for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(15, 1.6 + 0.75 * len(names)), sharey=True)
    for k, (ax, verb) in enumerate(zip(axes, VERBS, strict=True)):
        data = [rows[n]["samples_ms"][verb] for n in names]
        _box_with_points(ax, data, labels, seed=k)
        _log_ms_axis(ax, [x for values in data for x in values])
        ax.set_xlabel(f"{verb} time per invocation, ms (log scale)")
        ax.set_title(verb)
    axes[0].invert_yaxis()  # shared y: first row on top
    fig.suptitle(
        "CNI latency per invocation, host-local IPAM: every cycle a dot; box = p25-p75, "
        "line = median, whiskers = p5-p95 (hack/bench-cni)",
        fontsize=10,
    )
    return _save(fig, out, "cni-latency.png")


def _ecdf(ax: Any, values: list[float], label: str) -> None:
    ordered = sorted(values)
    n = len(ordered)
    xs = [ordered[0], *ordered]
    ax.step(xs, [0.0, *((i + 1) / n for i in range(n))], where="post", label=label)


def cni_ecdf(cni: dict[str, Any] | None, out: Path) -> str | None:
    """ECDF of the Go reference vs our shim+agent rows (the rows the 1.5x bar compares)."""
    rows = sampled_rows(cni, dhcp=False)
    picked = {n: r for n, r in rows.items() if n.startswith(("1 ", "2 ", "2a "))}
    if len(picked) < 2:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, verb in zip(axes, VERBS, strict=True):
        for name, row in picked.items():
            _ecdf(ax, row["samples_ms"][verb], name)
        medians = " / ".join(f"{row[verb]['median_ms']:.1f}" for row in picked.values())
        ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xlabel(f"{verb} time per invocation, ms")
        ax.set_title(f"{verb}: medians {medians} ms (legend order)")
        # the body of the distributions: cut at 1.5x the largest p95 (outliers: cni-latency.png)
        top = max(x for row in picked.values() for x in row["samples_ms"][verb])
        ax.set_xlim(0, min(top * 1.05, 1.5 * max(row[verb]["p95_ms"] for row in picked.values())))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of invocations at or below")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle(
        "Go reference macvlan vs ours (shim + agent), rows run interleaved cycle by cycle: "
        "empirical CDF (hack/bench-cni); x axis cut at 1.5x the largest p95, every sample "
        "is in the dot plot",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, out, "cni-ecdf.png", layout_done=True)


def cni_dhcp(cni: dict[str, Any] | None, out: Path) -> str | None:
    """DHCP rows (macvlan + the reference dhcp daemon against dnsmasq): Go vs ours."""
    rows = sampled_rows(cni, dhcp=True)
    if not rows:
        return None
    names = list(rows)
    labels = [f"{n} (n={rows[n]['n']})" for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(13, 1.8 + 0.8 * len(names)), sharey=True)
    for k, (ax, verb) in enumerate(zip(axes, ("ADD", "DEL"), strict=True)):
        data = [rows[n]["samples_ms"][verb] for n in names]
        _box_with_points(ax, data, labels, seed=10 + k)
        _log_ms_axis(ax, [x for values in data for x in values])
        ax.set_xlabel(f"{verb} time per invocation, ms (log scale)")
        ax.set_title(f"{verb} with DHCP IPAM")
    axes[0].invert_yaxis()  # shared y: first row on top
    fig.suptitle(
        "macvlan + dhcp IPAM (reference dhcp daemon, dnsmasq in a LAN netns): "
        "every cycle a dot (hack/bench-cni row 5)",
        fontsize=10,
    )
    return _save(fig, out, "cni-dhcp.png")


def concurrency_scaling(sweep: list[dict[str, Any]], out: Path) -> str | None:
    """Throughput and p50/p99 latency vs pods in flight (tests/reliability/test_load.py)."""
    if not sweep:
        return None
    par = [r["parallelism"] for r in sweep]
    fig, (thr, lat) = plt.subplots(1, 2, figsize=(12, 4.4))
    thr.plot(par, [r["add_pods_per_s"] for r in sweep], "o-", label="ADD")
    thr.plot(par, [r["del_pods_per_s"] for r in sweep], "s--", label="DEL")
    thr.set_ylabel("throughput, pods/s")
    thr.set_title(f"Throughput, {sweep[0]['pods']} pods per run")
    thr.set_ylim(bottom=0)
    shown: list[float] = []
    for verb, marker, color in (("add", "o", "tab:blue"), ("del", "s", "tab:orange")):
        p50 = [r[f"{verb}_ms"]["p50"] for r in sweep]
        p99 = [r[f"{verb}_ms"]["p99"] for r in sweep]
        lat.plot(par, p50, f"{marker}-", color=color, label=f"{verb.upper()} p50")
        lat.plot(par, p99, f"{marker}:", color=color, label=f"{verb.upper()} p99")
        shown += p50 + p99
    lat.set_ylabel("latency of one invocation, ms (log scale)")
    _log_ms_axis(lat, shown, axis="y")
    lat.set_title("Latency per invocation")
    for ax in (thr, lat):
        ax.set_xscale("log", base=2)
        ax.set_xticks(par, [str(p) for p in par])
        ax.set_xlabel("pods in flight (parallel CNI invocations)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    first = sweep[0]
    fig.suptitle(
        f"Concurrency scaling through shim + agent on 2 cores: {first['vf_pods']} emulated-VF "
        f"pods + {first['fallback_pods']} macvlan pods, all ADDs then all DELs",
        fontsize=10,
    )
    return _save(fig, out, "concurrency-scaling.png")


def concurrency_histogram(conc: dict[str, Any] | None, out: Path) -> str | None:
    if not conc:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for verb in ("add_ms", "del_ms"):
        ax.hist(
            conc[verb]["all"],
            bins=20,
            alpha=0.6,
            label=f"{verb[:3].upper()} (p50 {conc[verb]['p50']:.0f} ms, "
            f"p99 {conc[verb]['p99']:.0f} ms)",
        )
    ax.set_xlabel("latency of one invocation with every pod in flight, ms")
    ax.set_ylabel("pods")
    ax.set_title(
        f"{conc['pods']} pods at once ({conc['vf_pods']} VF + {conc['fallback_pods']} "
        "macvlan), shim + agent"
    )
    ax.legend()
    return _save(fig, out, "concurrency.png")


def discovery(disc: dict[str, Any] | None, out: Path) -> str | None:
    if not disc or not disc.get("rows"):
        return None
    rows = disc["rows"]
    vfs = [r["vfs"] for r in rows]
    fig, (ax, per) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.plot(vfs, [r["median_ms"] for r in rows], "o-", label="warm median")
    ax.plot(vfs, [r["first_ms"] for r in rows], "s--", label="first read after the build")
    ax.axhline(disc["goal_s"] * 1000, color="red", linestyle=":", label="goal at 4,096 VFs")
    _log_ms_axis(
        ax, [r[k] for r in rows for k in ("median_ms", "first_ms")] + [disc["goal_s"] * 1000], "y"
    )
    ax.set_ylabel("SysfsReader.inventory(), ms (log scale)")
    ax.set_title("Discovery time")
    per.plot(vfs, [r["median_ms"] * 1000 / r["vfs"] for r in rows], "o-", label="warm median")
    per.set_ylim(bottom=0)
    per.set_ylabel("discovery time per VF, µs (flat = linear)")
    per.set_title("Cost per VF")
    for a in (ax, per):
        a.set_xscale("log", base=2)
        a.set_xticks(vfs, [str(v) for v in vfs])
        a.set_xlabel("VFs in the emulated sysfs tree (64 per PF)")
        a.grid(alpha=0.3, which="both")
        a.legend()
    fig.suptitle("Discovery scaling (hack/bench-discovery)", fontsize=10)
    return _save(fig, out, "discovery.png")


def cycles(cyc: dict[str, Any] | None, out: Path) -> str | None:
    if not cyc or not cyc.get("samples"):
        return None
    s = cyc["samples"]
    xs = [x["cycle"] for x in s]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(xs, [x["rss_kb"] / 1024 for x in s], "o-", label="agent RSS, MiB (left)")
    ax2 = ax.twinx()
    ax2.plot(xs, [x["fds"] for x in s], "s--", color="tab:orange", label="agent open fds (right)")
    ax2.plot(
        xs, [x["state_files"] for x in s], "^:", color="tab:green", label="state dir files (right)"
    )
    ax.set_xlabel("ADD/DEL cycles completed")
    ax.set_ylabel("agent RSS, MiB")
    ax2.set_ylabel("count")
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    fig.legend(loc="lower right", fontsize=8, bbox_to_anchor=(0.88, 0.15))
    ax.set_title(f"{cyc['cycles']} ADD/DEL cycles through one agent (VF and macvlan alternating)")
    return _save(fig, out, "cycles.png")
