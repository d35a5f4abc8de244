#!/usr/bin/env python3
"""The verdict and the plot of a soak (scripts/soak.sh): reads its CSV, writes an SVG of idle
resident memory and round latency (p50, p99) over time, prints a summary, and exits 1 if the soak
found a failed call, a lost frame, growth in descriptors or threads, memory growth past 20 %
(+ 2 MiB) of its level after the warm-up round, or a last third's p99 more than twice the first
third's (+ 5 ms). Standard library only.

Usage: scripts/soak_report.py SOAK.CSV OUT.SVG
"""

import csv
import statistics
import sys

WIDTH, PANEL, MARGIN = 720, 220, 56


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def verdict(rows):
    """The problems the soak found (empty: it passed)."""
    rounds = [r for r in rows if r["round"] != "0"]
    problems = []
    if not rounds:
        return ["no round ran"]
    for r in rounds:
        if int(r["failed"]) or int(r["lost"]) or not r["p99_ms"]:
            problems.append(
                f"round {r['round']}: {r['failed']} calls failed or refused, {r['lost']} frames lost"
            )
    warm = rounds[0]
    last = rounds[-1]
    if int(last["fds"]) > int(warm["fds"]) + 8:
        problems.append(f"descriptors grew from {warm['fds']} to {last['fds']}")
    if int(last["threads"]) > int(warm["threads"]):
        problems.append(f"threads grew from {warm['threads']} to {last['threads']}")
    rss_warm, rss_last = int(warm["idle_rss_kib"]), int(last["idle_rss_kib"])
    if rss_last > rss_warm * 1.2 + 2048:
        problems.append(f"idle memory grew from {rss_warm} KiB to {rss_last} KiB")
    p99 = [float(r["p99_ms"]) for r in rounds if r["p99_ms"]]
    third = max(1, len(p99) // 3)
    first, end = statistics.median(p99[:third]), statistics.median(p99[-third:])
    if end > 2 * first + 5:
        problems.append(f"p99 drifted from {first:.2f} ms to {end:.2f} ms")
    return problems


def polyline(points, x_max, y_max, top, colour):
    """An SVG polyline of (x, y) points in a panel whose top edge is at `top`."""
    inner_w, inner_h = WIDTH - 2 * MARGIN, PANEL - 50
    coords = " ".join(
        f"{MARGIN + inner_w * x / x_max:.1f},{top + 10 + inner_h * (1 - y / y_max):.1f}"
        for x, y in points
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'


def panel(top, title, unit, series, x_max):
    """One panel: axes, labels and a line per (name, colour, points) series."""
    y_max = max([y for _, _, points in series for _, y in points] + [1e-9]) * 1.15
    inner_h = PANEL - 50
    parts = [
        f'<text x="{MARGIN}" y="{top}" font-size="14" font-weight="bold">{title}</text>',
        f'<line x1="{MARGIN}" y1="{top + 10 + inner_h}" x2="{WIDTH - MARGIN}" '
        f'y2="{top + 10 + inner_h}" stroke="#444"/>',
        f'<line x1="{MARGIN}" y1="{top + 10}" x2="{MARGIN}" y2="{top + 10 + inner_h}" stroke="#444"/>',
        f'<text x="{MARGIN - 6}" y="{top + 14}" font-size="11" text-anchor="end">{y_max:.3g}</text>',
        f'<text x="{MARGIN - 6}" y="{top + 10 + inner_h}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{MARGIN - 40}" y="{top + 10 + inner_h / 2}" font-size="11">{unit}</text>',
        f'<text x="{WIDTH - MARGIN}" y="{top + 26 + inner_h}" font-size="11" '
        f'text-anchor="end">{x_max:.1f} min</text>',
    ]
    for i, (name, colour, points) in enumerate(series):
        parts.append(polyline(points, x_max, y_max, top, colour))
        parts.append(
            f'<text x="{WIDTH - MARGIN - 90 * (i + 1)}" y="{top}" font-size="12" '
            f'fill="{colour}">{name}</text>'
        )
    return parts


def svg(rows):
    minutes = [int(r["elapsed_s"]) / 60 for r in rows]
    x_max = max(minutes[-1], 1e-9)
    rss = [(m, int(r["idle_rss_kib"]) / 1024) for m, r in zip(minutes, rows)]
    rounds = [(m, r) for m, r in zip(minutes, rows) if r["p99_ms"]]
    p50 = [(m, float(r["p50_ms"])) for m, r in rounds]
    p99 = [(m, float(r["p99_ms"])) for m, r in rounds]
    calls = rows[-1]["calls"]
    height = 2 * PANEL + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN}" y="18" font-size="13">soak: {calls} calls per round, '
        f'{len(rounds)} rounds (scripts/soak.sh)</text>',
    ]
    parts += panel(48, "server RSS with no call up", "MiB", [("idle RSS", "#1f77b4", rss)], x_max)
    parts += panel(
        48 + PANEL,
        "media→media latency per round",
        "ms",
        [("p50", "#2ca02c", p50), ("p99", "#d62728", p99)],
        x_max,
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = rows_of(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        f.write(svg(rows))
    rounds = [r for r in rows if r["round"] != "0"]
    if rounds:
        first, last = rounds[0], rounds[-1]
        print(
            f"soak: {len(rounds)} rounds over {int(last['elapsed_s'])} s; idle RSS "
            f"{first['idle_rss_kib']} → {last['idle_rss_kib']} KiB, descriptors {first['fds']} → "
            f"{last['fds']}, threads {first['threads']} → {last['threads']}; plot {sys.argv[2]}"
        )
    problems = verdict(rows)
    for problem in problems:
        print(f"soak: FAILED: {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
