"""The benchmark's output: a table on stdout and the same figures as JSON (``bench/results/latest.json``).

JSON layout (every rate is a ``{"min", "median", "max"}`` over repeats)::

    machine, plan, model, layout, layout_search      what ran, where, with which settings
    rows.beam<B>.<row>.tokens_per_s|segments_per_s   row ∈ L, S-big, S-small, naive, HF; target tokens per second
    ratios.beam<B>."S-big/L"|"S-small/L"|...          ratios of rows measured in the same repeat
    api[]                                            accept throughput per client concurrency: jobs_per_s, p50/p99_ms
    latency                                          submit → callback of one 10-segment job vs its raw translation
    delivery                                         callbacks_per_s of the delivery worker alone
    worker_peak_rss_bytes, service_cpu_seconds       memory and CPU of the service processes
    sanity                                           the trained demo model: real outputs, raw vs service
    targets[]                                        each target of issue 6: value, met
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Where ``make bench`` writes its figures (git-ignored).
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    out: list[dict[str, Any]] = []
    ratios = results.get("ratios", {})
    for beam_key, beam_ratios in ratios.items():
        for name, floor in (("S-big/L", 0.95), ("S-small/L", 0.85)):
            if name in beam_ratios:
                value = beam_ratios[name]["median"]
                target = f"{name} ≥ {floor} ({beam_key})"
                out.append({"target": target, "value": round(value, 3), "met": value >= floor})
    naive = ratios.get("beam4", {}).get("S-small/naive")
    if naive:
        value = naive["median"]
        out.append({"target": "S-small/naive ≥ 1.5 (beam4)", "value": round(value, 3), "met": value >= 1.5})
    api = results.get("api") or []
    if api:
        passing = [a for a in api if a["jobs_per_s"] >= 500 and a["p99_ms"] < 50]
        best = max(passing or api, key=lambda a: a["jobs_per_s"])
        out.append(
            {
                "target": "API ≥ 500 jobs/s with p99 < 50 ms",
                "value": f"{best['jobs_per_s']} jobs/s, p99 {best['p99_ms']} ms ({best['concurrency']} connections)",
                "met": bool(passing),
            }
        )
    latency = results.get("latency")
    if latency:
        out.append(
            {
                "target": "submit→callback ≤ raw translation + 100 ms",
                "value": f"+{latency['overhead_ms']} ms",
                "met": latency["overhead_ms"] <= 100,
            }
        )
    return out


def _rate(summary: dict[str, float], digits: int = 0) -> str:
    return f"{summary['min']:.{digits}f} / {summary['median']:.{digits}f} / {summary['max']:.{digits}f}"


def render(results: dict[str, Any]) -> str:
    """The table ``make bench`` prints."""
    plan, lines = results["plan"], []
    m = results["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; ctranslate2 {m['ctranslate2']}")
    layout = results["layout"]
    lines.append(
        f"model: {results['model']['spec']}; {plan['sentences']} sentences "
        f"(~{results['source_tokens_per_segment']} source tokens) x {plan['length']} target tokens; "
        f"L layout inter {layout['inter_threads']} / intra {layout['intra_threads']}, "
        f"batches of {layout['max_batch_size']}"
    )
    for beam_key, rows in results["rows"].items():
        lines.append("")
        lines.append(f"{beam_key}: {'row':<8} {'target tokens/s min / median / max':>36} {'segments/s':>11} {'n':>3}")
        for row, figures in rows.items():
            lines.append(
                f"{'':{len(beam_key) + 1}} {row:<8} {_rate(figures['tokens_per_s']):>36} "
                f"{figures['segments_per_s']['median']:>11.2f} {figures['repeats']:>3}"
            )
        ratio_text = "  ".join(
            f"{name} {_rate(value, 2)}" for name, value in results["ratios"].get(beam_key, {}).items()
        )
        lines.append(f"{'':{len(beam_key) + 1}} ratios (min / median / max, same repeat): {ratio_text}")
        for row, per_process in results.get("cpu_ms_per_segment", {}).get(beam_key, {}).items():
            spent = ", ".join(f"{name} {ms:.1f}" for name, ms in per_process.items())
            lines.append(f"{'':{len(beam_key) + 1}} {row} CPU ms per segment: {spent}")
    lines.append("")
    for api in results.get("api", []):
        cpu = ", ".join(f"{name} {ms}" for name, ms in api.get("cpu_ms_per_job", {}).items())
        lines.append(
            f"API accept: {api['jobs_per_s']} jobs/s, p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms "
            f"({api['concurrency']} connections, {api['jobs']} jobs; CPU ms per job: {cpu})"
        )
    latency = results.get("latency")
    if latency:
        lines.append(
            f"submit→callback, one {latency['segments']}-segment job (beam {latency['beam_size']}): "
            f"{latency['submit_to_callback_s']['median'] * 1000:.0f} ms; raw translation "
            f"{latency['raw_translation_s']['median'] * 1000:.0f} ms; overhead {latency['overhead_ms']} ms"
        )
    delivery = results.get("delivery")
    if delivery:
        lines.append(
            f"delivery: {delivery['callbacks_per_s']} callbacks/s ({delivery['callbacks']} callbacks, "
            f"{delivery['delivery_cpu_seconds'] / delivery['callbacks'] * 1000:.1f} ms CPU each in the delivery worker)"
        )
    rss = results.get("worker_peak_rss_bytes")
    if rss:
        lines.append(f"worker peak RSS: {rss / 2**20:.0f} MiB")
    sanity = results.get("sanity", {})
    if "skipped" in sanity:
        lines.append(f"sanity row: skipped ({sanity['skipped']})")
    elif sanity:
        lines.append(
            f"sanity (demo model, {sanity['segments']} held-out segments, beam 4): raw {sanity['raw_tokens_per_s']} "
            f"tokens/s, service {sanity['service_tokens_per_s']} tokens/s, exact match {sanity['exact_match']:.1%}, "
            f"service = raw on {sanity['service_equals_raw']}/{sanity['segments']}"
        )
        for example in sanity["examples"]:
            lines.append(f"  {example['source']!r} → {example['output']!r} (reference {example['reference']!r})")
    lines.append("")
    for target in results.get("targets", []):
        lines.append(f"{'MET   ' if target['met'] else 'MISSED'} {target['target']}: {target['value']}")
    lines.append(f"duration: {results['duration_s']:.0f} s")
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path = DEFAULT_RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    return path
