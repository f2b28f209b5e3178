"""Markdown for hack/report: docs/report.md from the JSON artifacts of one run (and its figures).

``render(art, figs, info, quiet, steps, full)`` reads the benchmark and test artifacts in
``art``, draws the figures into ``figs`` (report_figures) and returns the report text.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import report_figures as figures

VERBS = ("ADD", "DEL", "ADD+DEL")


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def f1(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, int | float) else str(x)


def junit_summary(path: Path) -> tuple[dict[str, int], list[str]]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}, []
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}, []
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    bad = [
        f"{tc.get('classname')}::{tc.get('name')}"
        for tc in suite.iter("testcase")
        if tc.find("failure") is not None or tc.find("error") is not None
    ]
    return counts, bad


def image(name: str | None, alt: str) -> list[str]:
    return [f"![{alt}](figures/{name})", ""] if name else []


def concurrency_sweep(art: Path) -> list[dict[str, Any]]:
    rows = [load(p) for p in art.glob("concurrency_p*.json")]
    return sorted((r for r in rows if r), key=lambda r: r["parallelism"])


def dp_failures(dp: dict[str, Any], row: dict[str, Any]) -> list[str]:
    return [key for key, limit in dp["goals"].items() if row[key] >= limit]


# ------------------------------------------------------------------ sections
def headline(cni: Any, disc: Any, dp: Any, sweep: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    rows = (cni or {}).get("rows", {})
    ours = next((v for k, v in rows.items() if k.startswith("2 ") and "ratio_vs_go" in v), None)
    go = next((v for k, v in rows.items() if k.startswith("1 ") and "ADD" in v), None)
    if ours and go:
        verdict = "PASS" if ours.get("pass") else "FAIL"
        out.append(
            f"- CNI ADD+DEL median, ours (shim + agent) vs the Go reference macvlan: "
            f"{ours['ADD+DEL']['median_ms']:.1f} ms vs {go['ADD+DEL']['median_ms']:.1f} ms = "
            f"**{ours['ratio_vs_go']:.2f}x** (bar <= {ours.get('bar', 1.5)}x: {verdict})."
        )
    dhcp = {k: v for k, v in rows.items() if "dhcp" in k and "ADD" in v}
    go_d = next((v for k, v in dhcp.items() if "Go" in k), None)
    our_d = next((v for k, v in dhcp.items() if "ours" in k), None)
    if go_d and our_d:
        out.append(
            f"- DHCP ADD median (macvlan + reference dhcp daemon + dnsmasq): Go "
            f"{go_d['ADD']['median_ms'] / 1000:.2f} s, ours **{our_d['ADD']['median_ms']:.0f} ms**."
        )
    if sweep:
        best = max(sweep, key=lambda r: r["add_pods_per_s"])
        out.append(
            f"- Concurrency: peak ADD throughput **{best['add_pods_per_s']:.1f} pods/s** at "
            f"{best['parallelism']} in flight; {sweep[-1]['parallelism']} at once: ADD p50 "
            f"{sweep[-1]['add_ms']['p50']:.0f} ms, p99 {sweep[-1]['add_ms']['p99']:.0f} ms."
        )
    if disc and disc.get("rows"):
        top = disc["rows"][-1]
        verdict = "PASS" if top["median_ms"] < disc["goal_s"] * 1000 else "FAIL"
        out.append(
            f"- Discovery of {top['vfs']} VFs: **{top['median_ms']:.0f} ms** "
            f"(goal < {disc['goal_s'] * 1000:.0f} ms: {verdict})."
        )
    if dp and dp.get("rows"):
        failing = {k for r in dp["rows"] for k in dp_failures(dp, r)}
        out.append(
            f"- Device plugin: {len(dp['rows'])} sizes, "
            + ("every goal met." if not failing else f"goals missed: {', '.join(sorted(failing))}.")
        )
    return ["## Headline numbers", "", *out, ""] if out else []


def bar_verdict(row: dict[str, Any]) -> str:
    if "pass" not in row:
        return ""
    add = f", ADD <= {row['add_bar']}x" if "add_bar" in row else ""
    return f"{'PASS' if row['pass'] else 'FAIL'} (ADD+DEL <= {row['bar']}x{add})"


def burst_table(bursts: dict[str, Any]) -> list[str]:
    """bench-cni's burst rows: ``burst`` processes at once, batch wall time per verb vs Go."""
    if not bursts:
        return []
    body = []
    for k, v in bursts.items():
        cells = [k, v["burst"]]
        for verb in ("ADD", "DEL"):
            ratio = v.get(f"{verb}_ratio_vs_go")
            cells.append(f"{v[verb]['median_wall_s']:.3f} s"
                         + (f" ({ratio:.2f}x, {'PASS' if ratio <= 1.0 else 'FAIL'})"
                            if ratio is not None else ""))
        tails = v.get("DEL+tail")
        cells.append(f"{tails['median_wall_s']:.3f} s" if tails else "")
        cells.append(v["rounds"])
        body.append(cells)
    return [
        "Bursts: the processes of a batch are started at once (ADDs into fresh netns, then their "
        "DELs); the batch's wall time, median over rounds, vs Go's batch (bar <= 1.0x). "
        "*until tails end*: our DEL batch until the agent's deferred tails (the links' deletion "
        "after the answers, docs/cni.md \"Deferred DEL\") are done too - no bar, the runtime "
        "waits for the answers only.",
        "",
        table(["row", "at once", "ADD batch", "DEL batch", "DEL batch until tails end",
               "rounds"], body),
        "",
    ]


def cni_section(cni: Any, figs: Path) -> list[str]:
    out = ["## CNI latency: ours vs the Go reference macvlan", ""]
    all_rows = (cni or {}).get("rows", {})
    rows = {k: v for k, v in all_rows.items() if "ADD" in v and "burst" not in v}
    bursts = {k: v for k, v in all_rows.items() if "burst" in v}
    if not rows:
        return [*out, "bench-cni produced no results (see the step table).", ""]
    skipped = [f"{k}: {v['skipped']}" for k, v in cni["rows"].items() if "skipped" in v]
    body = [
        [
            k,
            *(f"{v[x]['median_ms']:.1f} / {v[x]['p95_ms']:.1f}" for x in VERBS),
            f"{v['ratio_vs_go']:.2f}x" if "ratio_vs_go" in v else "",
            f"{v['add_ratio_vs_go']:.2f}x" if "add_ratio_vs_go" in v else "",
            bar_verdict(v),
            f"{v['DEL+tail']['median_ms']:.1f} / {v['DEL+tail']['p95_ms']:.1f}"
            if "DEL+tail" in v else "",
            v["n"],
        ]
        for k, v in rows.items()
        if "dhcp" not in k
    ]
    out += [
        "Every row uses the same master and host-local IPAM, a fresh netns per cycle (outside "
        "the timed region); rows 1 and 2 alternate cycle by cycle so both see the same load. "
        "The binaries are exec'd as a runtime does (env + stdin). Our agent answers a DEL "
        "before its slow kernel step (a VF's move home, a fallback link's deletion: "
        "docs/cni.md \"Deferred DEL\") and runs it right after; *DEL + tail* is the time "
        "until that step is done too (no bar: the runtime waits for the answer only). The "
        "bench waits for it after each cycle, untimed, so every cycle starts from a quiet "
        "kernel as Go's do.",
        "",
        table(
            [
                "row",
                "ADD ms p50 / p95",
                "DEL ms p50 / p95",
                "ADD+DEL ms p50 / p95",
                "ADD+DEL vs Go",
                "ADD vs Go",
                "bar",
                "DEL + tail ms p50 / p95",
                "n",
            ],
            body,
        ),
        "",
        *burst_table(bursts),
        *[f"- {s}" for s in skipped],
        *([""] if skipped else []),
        f"1-minute load average before / after bench-cni: {cni.get('load_before', '?')} / "
        f"{cni.get('load_after', '?')} ({'quiet' if cni.get('quiet') else 'NOT quiet'} by "
        "its own --max-load).",
        "",
        *image(figures.cni_distributions(cni, figs), "CNI latency distributions"),
        *image(figures.cni_ecdf(cni, figs), "CNI latency ECDF, Go vs ours"),
    ]
    dhcp = {k: v for k, v in rows.items() if "dhcp" in k}
    if dhcp:
        out += [
            "### DHCP IPAM (issue #4: the reference macvlan + dhcp ADD time)",
            "",
            'macvlan fallback with `"ipam": {"type": "dhcp"}`: the reference `dhcp` '
            "daemon in the host netns, dnsmasq (`--no-ping`) in a LAN netns. The reference "
            "macvlan calls IPAM while its link is down, so the daemon's first DISCOVER waits "
            "for a retry; ours brings the link up first.",
            "",
            table(
                ["row", "ADD ms p50 / p95", "DEL ms p50 / p95", "ADD+DEL ms p50 / p95", "n"],
                [
                    [k, *(f"{v[x]['median_ms']:.1f} / {v[x]['p95_ms']:.1f}" for x in VERBS), v["n"]]
                    for k, v in dhcp.items()
                ],
            ),
            "",
            *image(figures.cni_dhcp(cni, figs), "DHCP ADD and DEL"),
        ]
    return out


def discovery_section(disc: Any, figs: Path) -> list[str]:
    if not disc or not disc.get("rows"):
        return ["## Discovery scaling", "", "bench-discovery produced no results.", ""]
    goal_ms = disc["goal_s"] * 1000
    return [
        "## Discovery scaling",
        "",
        table(
            [
                "VFs",
                "PFs",
                "first read ms",
                "warm median ms",
                "per VF µs",
                f"goal < {goal_ms:.0f} ms",
            ],
            [
                [
                    r["vfs"],
                    r["pfs"],
                    f1(r["first_ms"]),
                    f1(r["median_ms"]),
                    f"{r['median_ms'] * 1000 / r['vfs']:.0f}",
                    ("PASS" if r["median_ms"] < goal_ms else "FAIL")
                    if r is disc["rows"][-1]
                    else "",
                ]
                for r in disc["rows"]
            ],
        ),
        "",
        *image(figures.discovery(disc, figs), "discovery scaling"),
    ]


def deviceplugin_section(dp: Any) -> list[str]:
    out = ["## Device plugin (real sriov-device-plugin process vs the kubelet simulator)", ""]
    if not dp or not dp.get("rows"):
        return [*out, "bench-deviceplugin produced no results (see the step table).", ""]
    body = []
    for r in dp["rows"]:
        missed = dp_failures(dp, r)
        body.append(
            [
                r["vfs"],
                f"{r['first_list_s']:.2f}",
                f"{r['health_med_ms']:.1f} / {r['health_ms']:.1f}",
                f"{r['alloc_p50_ms']:.2f} / {r['alloc_p99_ms']:.2f}",
                f1(r["rss_mb"]),
                f"{r['idle_cpu_pct']:.2f}",
                f"{r['load_avg_1m']:.2f}" if "load_avg_1m" in r else "?",
                "PASS" if not missed else "FAIL: " + ", ".join(missed),
            ]
        )
    return [
        *out,
        table(
            [
                "VFs",
                "first list s",
                "health->update med / max ms",
                "Allocate p50 / p99 ms",
                "RSS MB",
                "idle CPU %",
                "load1 at start",
                "result",
            ],
            body,
        ),
        "",
        "Goals: " + ", ".join(f"`{k}` < {v}" for k, v in dp["goals"].items()) + ".",
        "",
    ]


def concurrency_section(art: Path, figs: Path) -> list[str]:
    sweep = concurrency_sweep(art)
    conc, cyc = load(art / "concurrency.json"), load(art / "cycles.json")
    out = ["## Concurrency and load (tests/reliability/test_load.py)", ""]
    if sweep:
        out += [
            f"{sweep[0]['pods']} pods ({sweep[0]['vf_pods']} on emulated VFs, "
            f"{sweep[0]['fallback_pods']} macvlan fallback) through the real shim + agent: all "
            "ADDs, then all DELs, with N invocations in flight. At every N the test asserts no "
            "IP or VF given twice and nothing left behind.",
            "",
            table(
                [
                    "in flight",
                    "ADD pods/s",
                    "ADD p50 / p99 ms",
                    "DEL pods/s",
                    "DEL p50 / p99 ms",
                    "DEL retries",
                    "load1 at start",
                ],
                [
                    [
                        r["parallelism"],
                        f1(r["add_pods_per_s"]),
                        f"{r['add_ms']['p50']:.0f} / {r['add_ms']['p99']:.0f}",
                        f1(r["del_pods_per_s"]),
                        f"{r['del_ms']['p50']:.0f} / {r['del_ms']['p99']:.0f}",
                        r.get("del_retries", 0),
                        f"{r['load_avg_1m']:.2f}" if "load_avg_1m" in r else "?",
                    ]
                    for r in sweep
                ],
            ),
            "",
            *image(figures.concurrency_scaling(sweep, figs), "concurrency scaling"),
            *image(figures.concurrency_histogram(conc, figs), "latency with every pod in flight"),
        ]
    if cyc and cyc.get("samples"):
        s = cyc["samples"]
        out += [
            f"{cyc['cycles']} ADD/DEL cycles (VF and macvlan alternating) through one agent: "
            f"RSS {s[0]['rss_kb'] / 1024:.1f} -> {s[-1]['rss_kb'] / 1024:.1f} MiB, fds "
            f"{s[0]['fds']} -> {s[-1]['fds']}, state files {s[0]['state_files']} -> "
            f"{s[-1]['state_files']}; ADD+DEL p50 {cyc['add_del_ms']['p50']:.0f} ms, p99 "
            f"{cyc['add_del_ms']['p99']:.0f} ms.",
            "",
            *image(figures.cycles(cyc, figs), "ADD/DEL cycles"),
        ]
    return out


def robustness_sections(art: Path) -> list[str]:
    out = ["## Fault injection (SIGKILL, then DEL)", ""]
    faults, spec = load(art / "fault_matrix.json"), load(art / "spec_matrix.json")
    if faults:
        out += [
            table(
                ["killed process", "crashed right after", "outcome after DEL / restart"],
                [[r["process"], r["after"], r["outcome"]] for r in faults],
            ),
            "",
        ]
    out += ["## CNI spec idempotency matrix", ""]
    if spec:
        modes = sorted({m for v in spec.values() for m in v})
        rows = [[case, *(v.get(m, "-") for m in modes)] for case, v in spec.items()]
        out += [table(["case", *modes], rows), ""]
    out += ["## Fuzzing", ""]
    fuzz_rows = []
    for label in ("fuzz_cni_in_process", "fuzz_cni_shim", "fuzz_pools_parser", "fuzz_pools_reload"):
        data = load(art / f"{label}.json")
        if data:
            detail = (
                data.get("codes") or data.get("outcomes") or {"pools kept": data.get("pools_kept")}
            )
            outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(detail.items()))
            fuzz_rows.append([label.replace("_", " "), data["cases"], outcomes])
    if fuzz_rows:
        out += [
            table(["target", "cases", "outcomes (CNI: error code: count)"], fuzz_rows),
            "",
            "Every CNI case carried a defect and ended with exactly one error JSON, a non-zero "
            "exit, no traceback, and no state, lease or link created.",
            "",
        ]
    sec = load(art / "security_ast.json")
    if sec:
        found = "no" if not sec["violations"] else len(sec["violations"])
        out += [
            "## Security",
            "",
            f"AST scan of {sec['files_scanned']} Python files: {found} files with shell=True, "
            "os.system, os.popen or string argv.",
            "",
        ]
    return out


def render(
    art: Path,
    figs: Path,
    info: dict[str, str],
    quiet: dict[str, Any],
    steps: list[dict[str, Any]],
    full: bool,
) -> str:
    disc, dp, cni = (
        load(art / "bench-discovery.json"),
        load(art / "bench-deviceplugin.json"),
        load(art / "bench-cni.json"),
    )
    counts, bad = junit_summary(art / "junit.xml")
    waited = (
        f"The machine was quiet: 1-minute load average {quiet['load_at_call']} when called, "
        f"below {quiet['max_load']:.1f} after {quiet['waited_s']} s of waiting."
        if quiet["quiet"]
        else f"The machine was NOT quiet: the 1-minute load average stayed >= "
        f"{quiet['max_load']:.1f} for {quiet['waited_s']} s (other work on the shared VM), so "
        "the run went ahead anyway; read the numbers with the load column in mind."
    )
    out = [
        "# sriov-k8s reliability and performance report",
        "",
        "Generated by `hack/report` - every number and figure below comes from the run it "
        "describes (do not edit by hand).",
        "",
        table(["machine", ""], [[k, v] for k, v in info.items()]),
        "",
        f"Mode: {'full sizes (RELIABILITY_FULL=1)' if full else 'quick (default sizes)'}. "
        f"{waited} Load average (1, 5, 15 min) at the start: {quiet['load_at_start']}.",
        "",
        *headline(cni, disc, dp, concurrency_sweep(art)),
        "## Steps",
        "",
        table(
            ["step", "exit", "seconds", "load avg before (1/5/15 min)", "load avg after"],
            [[s["name"], s["rc"], s["seconds"], s["load_before"], s["load_after"]] for s in steps],
        ),
        "",
    ]
    if counts:
        passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        out += [
            "## Reliability suite (tests/reliability)",
            "",
            f"{counts['tests']} tests: {passed} passed, {counts['failures']} failed, "
            f"{counts['errors']} errors, {counts['skipped']} skipped.",
            "",
        ]
        out += [f"- FAILED `{b}`" for b in bad] + ([""] if bad else [])
    out += cni_section(cni, figs)
    out += discovery_section(disc, figs)
    out += deviceplugin_section(dp)
    out += concurrency_section(art, figs)
    out += robustness_sections(art)
    return "\n".join(out) + "\n"
