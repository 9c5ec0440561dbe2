"""Turns one bench result into the markdown table, the JSON and the bar chart.

All three are rendered from the same dict, so the README table, the JSON a
script reads and the chart can never disagree. The paper's Table I rows are
printed beside ours exactly as published.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from core.files import write_atomic
from core.words import count
from tools.bench.soak import MIN_SLOPE_SECONDS

# Table I of the seed study: seconds per prediction over 50 images, accuracy.
PAPER_ROWS = (
    {"model": "VGG-16", "where": "ml.c5.2xlarge", "s": 0.05123, "acc": 0.62},
    {"model": "modified VGG-16", "where": "ml.c5.2xlarge", "s": 0.02845, "acc": 0.70},
    {"model": "VGG-16", "where": "AWS DeepLens", "s": 6.218, "acc": 0.58},
    {"model": "modified VGG-16", "where": "AWS DeepLens", "s": 1.362, "acc": 0.65},
)
TARGET_SPEEDUP = 10.0
TARGET_MS_PER_FACE = 2.0  # issue 3: the shipped int8 model on one thread
TARGET_FPS = 100.0
TARGET_DETECT_MS = 8.0
TARGET_RSS_MB = 200.0
TARGET_SOAK_MIN = 30.0
FLAT_MB_PER_H = 2.0
BUSY_LOAD = 0.5  # 1-minute load per core above which the report warns that the CPU was shared


def paper_ratios() -> dict[str, float]:
    """VGG-16 / modified, per platform, from the paper's own figures."""
    by = {(r["model"], r["where"]): r["s"] for r in PAPER_ROWS}
    return {where: round(by[("VGG-16", where)] / by[("modified VGG-16", where)], 2)
            for where in sorted({r["where"] for r in PAPER_ROWS})}


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:.1f} %"


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def _mmacs(macs: int | None) -> str:
    return "" if macs is None else f"{macs / 1e6:,.0f}"


def machine_lines(m: dict[str, Any]) -> list[str]:
    load = m["load_average"][0]
    board = f"{m['board']}, " if m.get("board") else ""
    lines = [f"Machine: {board}{m['cpu']} ({m['machine']}), {m['os']}; Python {m['python']}, "
             f"{m['litert']}, {m['opencv']}, {m['numpy']}; load average {load} at start."]
    if load / m["cores"] >= BUSY_LOAD:
        lines.append(f"**The CPU was busy when this ran (load {load} on {m['cores']} cores), "
                     "so every time below is pessimistic.**")
    return lines


def table_lines(result: dict[str, Any]) -> list[str]:
    lines = ["| model | precision | run on | s/prediction | ms/prediction | accuracy, 50 faces "
             "| accuracy, validation split | file MB | MMACs | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["table"]:
        untrained = "untrained" in r["note"]
        acc50 = "n/a" if untrained else _pct(r["acc_faces"])
        accv = "n/a" if untrained else ""
        if r["acc_valid"] is not None:
            accv = f"{_pct(r['acc_valid'])} (n={r['valid_n']})"
        s = "" if r["ms"] is None else f"{r['ms'] / 1e3:.5f}"
        lines.append(f"| {r['model']} | {r['precision']} | this machine | {s} | {_num(r['ms'], '.3f')} | "
                     f"{acc50} | {accv} | {_num(r['size_mb'], '.2f')} | {_mmacs(r['macs'])} | {r['note']} |")
    for p in PAPER_ROWS:
        lines.append(f"| {p['model']} | not stated | {p['where']} (paper) | {p['s']:.5f} | {p['s'] * 1e3:.2f} | "
                     f"{p['acc'] * 100:.0f} % | | | | Table I as published (its own test images) |")
    return lines


def ratio_lines(result: dict[str, Any]) -> list[str]:
    r = result["ratios"]
    parts = [f"{name}: {value:.1f}x" for name, value in r.items() if value is not None]
    paper = ", ".join(f"{where} {v:.2f}x" for where, v in paper_ratios().items())
    return [f"VGG-16 / modified VGG-16, same run: {'; '.join(parts) or 'n/a'}. Paper: {paper}."]


def pipeline_lines(p: dict[str, Any]) -> list[str]:
    if "skipped" in p:
        return [f"Skipped: {p['skipped']}"]
    lines = [f"Source: {p['video']} ({p['size'][0]}x{p['size'][1]}). Decode runs on the same thread as the rest; "
             "times are means per frame in ms.", "",
             "| detector | threads | frames/s | capture/decode | detect | p95 detect | preprocess | classify "
             "| decide | total | p95 total | frames with a face | slowest stage |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in p["runs"]:
        ms = run["ms"]
        lines.append(f"| {run['detector']} | {run['threads']} | {run['fps']:.1f} | {ms['capture']:.2f} | "
                     f"{ms['detect']:.2f} | {run['p95_detect_ms']:.2f} | {ms['preprocess']:.2f} | "
                     f"{ms['classify']:.2f} | {ms['decide']:.3f} | {ms['total']:.2f} | {run['p95_total_ms']:.2f} | "
                     f"{run['faces']}/{run['frames']} | {run['dominant']} |")
    return lines


def soak_lines(s: dict[str, Any], title: str) -> list[str]:
    if "skipped" in s:
        return [f"{title}: skipped: {s['skipped']}"]
    slope = (f"none (a slope needs a run of {MIN_SLOPE_SECONDS / 60:g} min or more)" if s["slope_mb_per_h"] is None
             else f"{s['slope_mb_per_h']:+.2f} MB/hour")
    fps = "n/a" if s["fps"] is None else f"{s['fps']:.1f}"
    lines = [f"{title}: `facecue run` as a child process on a looping video paced at "
             f"{s['source_fps']:.0f} frames/s, {s['seconds'] / 60:.2f} min after READY.", "",
             "| start to READY | peak RSS | RSS slope | frames/s | frames | dropped | bad frames "
             "| errors | warnings | exit code |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {s['ready_s']:.2f} s | {_num(s['peak_rss_mb'], '.1f')} MB | {slope} | {fps} | {s['frames']} | "
             f"{s['dropped']} | {s['bad']} | {s['errors']} | {s['warnings']} | {s['exit_code']}"
             f"{' (ended early)' if s['ended_early'] else ''} |", "",
             "RSS (MB) at seconds after READY: " + ", ".join(f"{t:.0f}s {mb:.1f}" for t, mb in s["samples"])]
    return lines


def target_lines(result: dict[str, Any]) -> list[str]:
    """Each speed and memory target (issues 3 and 5) with the figure measured and whether it is met."""
    rows = []
    shipped = next((r for r in result["table"] if r["key"] == "modified-int8"), {})
    ms, threads = shipped.get("ms"), result["settings"]["model_threads"]
    rows.append((f"modified VGG-16 int8 <= {TARGET_MS_PER_FACE:g} ms per face on one thread",
                 "n/a" if ms is None else f"{ms:.3f} ms on {count(threads, 'thread')}",
                 None if ms is None or threads != 1 else ms <= TARGET_MS_PER_FACE))
    speedup = result["ratios"].get("VGG-16 float32 / modified int8")
    rows.append(("modified VGG-16 int8 >= 10x faster than VGG-16 float32",
                 "n/a" if speedup is None else f"{speedup:.1f}x",
                 None if speedup is None else speedup >= TARGET_SPEEDUP))
    one = next((r for r in result["pipeline"].get("runs", []) if r["threads"] == 1), None)  # the shipped detector
    size = "x".join(map(str, result["pipeline"].get("size", ())))
    rows.append((f"detector, tracking included, mean <= {TARGET_DETECT_MS:g} ms a frame at 640x480 on one thread",
                 "n/a" if one is None else f"{one['ms']['detect']:.2f} ms ({one['detector']}, p95 "
                 f"{one['p95_detect_ms']:.2f} ms)",
                 None if one is None or size != "640x480" else one["ms"]["detect"] <= TARGET_DETECT_MS))
    rows.append((f">= {TARGET_FPS:g} frames/s at 640x480 on one thread", "n/a" if one is None else
                 f"{one['fps']:.1f} frames/s at {size} ({one['detector']}; slowest stage: {one['dominant']})",
                 None if one is None or size != "640x480" else one["fps"] >= TARGET_FPS))
    daemon = result["daemon"]
    peak = daemon.get("peak_rss_mb")
    rows.append(("daemon peak RSS <= 200 MB", "n/a" if peak is None else f"{peak:.1f} MB",
                 None if peak is None else peak <= TARGET_RSS_MB))
    soak = result.get("soak") or {}
    slope = soak.get("slope_mb_per_h")
    if not soak:
        rows.append(("flat RSS over a 30-minute soak", "not run (`facecue-model bench --soak 30`)", None))
    elif slope is None:
        rows.append(("flat RSS over a 30-minute soak", f"no slope from {soak['seconds'] / 60:.1f} min "
                     f"(it needs {MIN_SLOPE_SECONDS / 60:g} min or more)", None))
    else:
        minutes = soak["seconds"] / 60
        verdict = abs(slope) <= FLAT_MB_PER_H if minutes >= TARGET_SOAK_MIN else None
        rows.append(("flat RSS over a 30-minute soak",
                     f"{slope:+.2f} MB/hour over {minutes:.1f} min"
                     + ("" if verdict is not None else " (shorter than 30 min: no verdict)"), verdict))
    lines = ["| target | measured | met |", "|---|---|---|"]
    for name, measured, ok in rows:
        lines.append(f"| {name} | {measured} | {'n/a' if ok is None else 'yes' if ok else 'NO'} |")
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    out = ["## Benchmarks", "", *machine_lines(result["machine"]), ""]
    s = result["settings"]
    if result.get("table") is not None:
        out += ["### Table I, reproduced", "",
                f"Seconds per prediction: one face per invoke through the device's LiteRT path, "
                f"{s['repeats']} passes over {s['faces_source']} after {s['warmup']} warm-up invokes, median "
                f"pass; {count(s['model_threads'], 'interpreter thread')}.", "",
                *table_lines(result), "", *ratio_lines(result), ""]
    if result.get("pipeline") is not None:
        out += ["### Whole pipeline", "", *pipeline_lines(result["pipeline"]), ""]
    if result.get("daemon") is not None:
        out += ["### The daemon", "", *soak_lines(result["daemon"], "Daemon run"), ""]
    if result.get("soak") is not None:
        out += ["### Soak", "", *soak_lines(result["soak"], "Soak"), ""]
    if result.get("table") is not None:
        out += ["### Targets", "", *target_lines(result), ""]
    if result["notes"]:
        out += ["Notes:", "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(out)


def chart_png(result: dict[str, Any]) -> bytes:
    """Horizontal bars of ms/prediction, log scale, ours beside the paper's. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(f"{r['model']} {r['precision']} (this machine)", r["ms"], "tab:blue")
            for r in result["table"] if r["ms"] is not None]
    colours = {"ml.c5.2xlarge": "tab:orange", "AWS DeepLens": "tab:red"}
    bars += [(f"{p['model']} ({p['where']}, paper)", p["s"] * 1e3, colours[p["where"]]) for p in PAPER_ROWS]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(bars) + 1.2))
    names, values, cols = zip(*bars, strict=True)
    ax.barh(range(len(bars)), values, color=cols)
    ax.set_yticks(range(len(bars)), names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms per prediction (log scale)")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3g}" if v < 1000 else f" {v:,.0f}", va="center", fontsize=8)
    ax.set_title(f"facecue-model bench: {result['machine']['cpu']} vs Table I")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_outputs(result: dict[str, Any], out: Path, json_path: Path | None, stem: str = "bench") -> list[str]:
    """Write ``STEM.md``, ``STEM.json`` (or ``json_path``) and, when matplotlib is there, ``STEM.png``.

    Returns one line per file written or skipped, for the console.
    """
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{stem}.md"
    write_atomic(md, render_markdown(result).encode())
    js = json_path or out / f"{stem}.json"
    js.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(js, json.dumps(result, indent=1).encode())
    said = [f"wrote {md}", f"wrote {js}"]
    if result.get("table"):
        try:
            png = chart_png(result)
        except ImportError:
            said.append("chart skipped: matplotlib is not installed (pip install matplotlib)")
        else:
            write_atomic(out / f"{stem}.png", png)
            said.append(f"wrote {out / f'{stem}.png'}")
    return said
