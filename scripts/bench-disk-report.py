#!/usr/bin/env python3
"""Writes the disk soak section of benchmarks.md and its chart, from scripts/bench-disk.sh's steps.

    bench-disk-report.py STEPS.tsv FACTS.json OUTDIR

STEPS.tsv: contender, step, event, bytes, images, seconds since the start. The section goes
between <!-- bench-disk --> markers in OUTDIR/benchmarks.md (appended when they are missing), so
the other benchmarks' sections stay as they are.
"""
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {"seed": "hand-made (seed)", "dockwarm": "dockwarm"}
START, END = "<!-- bench-disk:start -->", "<!-- bench-disk:end -->"


def gb(b):
    return f"{int(b) / 1e9:.2f} GB"


def parse_size(text):
    t = text.strip().lower().replace(" ", "")
    for unit, scale in (("tib", 1024**4), ("gib", 1024**3), ("mib", 1024**2), ("kib", 1024),
                        ("tb", 1e12), ("gb", 1e9), ("mb", 1e6), ("kb", 1e3), ("b", 1)):
        if t.endswith(unit):
            return float(t[: -len(unit)]) * scale
    return float(t)


def own_counts(work):
    """dockwarm's own count at each upkeep run that removed something (its daemon log)."""
    path = os.path.join(work, "dockwarm-daemon.log")
    if not os.path.exists(path):
        return []
    pat = re.compile(r"^dwsoak-dockwarm: ([\d.]+ [kMGT]?B) of dockwarm's images .*?: (under|OVER)")
    return [(parse_size(m.group(1)), m.group(2)) for m in map(pat.match, open(path)) if m]


def main():
    steps_path, facts_path, out = sys.argv[1:4]
    own = own_counts(os.path.dirname(os.path.abspath(steps_path)))
    facts = json.load(open(facts_path))
    rows = [l.rstrip("\n").split("\t") for l in open(steps_path) if l.strip()]
    by = {}
    for c, step, event, b, n, secs in rows:
        by.setdefault(c, []).append((int(step), event, int(b), int(n)))
    budget = parse_size(facts["budget"])

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for c, pts in by.items():
        ax.plot([p[0] for p in pts], [p[2] / 1e9 for p in pts], label=NAMES.get(c, c),
                marker="." if len(pts) < 40 else None)
    ax.axhline(budget / 1e9, color="grey", linestyle="--", linewidth=1,
               label=f"dockwarm's budget ({facts['budget']})")
    ax.set_xlabel("step (workspace created, lockfile change, workspace removed)")
    ax.set_ylabel("disk used by the contender's images (GB)")
    ax.set_title(f"A simulated month: {facts['ws']} workspaces, {facts['ws'] * facts['changes']} lockfile changes")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = os.path.join(out, "bench-disk.png")
    fig.savefig(png, dpi=110)

    n = facts["ws"] * facts["changes"]
    lines = [
        START,
        "## Disk over a simulated month (issue 12)",
        "",
        f"Made by `scripts/bench-disk.sh` on {facts['date']}, dockwarm commit `{facts['commit']}`, "
        f"{facts['minutes']} minutes, load average at the end {facts['load']}. Project: `bench/app` "
        f"(59 packages from a local index). The month: {facts['ws']} workspaces made with "
        f"`git worktree add` and set up, {n} lockfile changes committed across them "
        f"({facts['changes']} each, each a new `uv.lock`), each workspace removed two steps later "
        "(every second one with `dockwarm archive` first, the rest with a bare `git worktree remove`, "
        "as `wt remove` or a failed Conductor archive leave them); main and the last two remain. "
        f"dockwarm ran with `[prune] budget = \"{facts['budget']}\"` in dockwarm.toml and nothing "
        "else: no `dockwarm prune` by hand. The hand-made way (the seed: `docker-compose build` in "
        "each workspace) removes nothing, as it did.",
        "",
        "Disk is the unique bytes of the contender's images (tagged, and untagged ones its builds "
        "left), each layer counted once, the base image's layers not counted "
        "(`scripts/bench-disk-measure.py`: chain IDs from the image's layers, sizes from the "
        "engine's image history). BuildKit's own cache is not included: it is the engine's, shared "
        "with every other project, and this benchmark never prunes it.",
        "",
        f"![disk over the month]({os.path.basename(png)})",
        "",
        "| contender | peak | at the end | images at the end |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c, pts in by.items():
        lines.append(f"| {NAMES.get(c, c)} | {gb(max(p[2] for p in pts))} | {gb(pts[-1][2])} | {pts[-1][3]} |")
    if own:
        over = sum(1 for _, st in own if st != "under")
        lines += [
            "",
            f"dockwarm's own count (what its budget measures) after each of its {len(own)} upkeep runs "
            f"that removed something: at most {gb(max(b for b, _ in own))}, "
            f"{'always under the budget' if not over else f'over the budget {over} time(s)'}. It is a little "
            "lower than the column above because it leaves out layers that images outside the project "
            "also hold: here the `base` stage's uv layer, which the hand-made contender's images (and "
            "other benchmarks on this engine) hold too; removing dockwarm's images would not free it.",
        ]
    gone_path = os.path.join(os.path.dirname(os.path.abspath(steps_path)), "gone.tsv")
    if os.path.exists(gone_path):
        gone = [l.rstrip("\n").split("\t") for l in open(gone_path) if l.strip()]
        bare = [float(g[1]) for g in gone if not g[2].startswith("archive")]
        if bare:
            lines += [
                "",
                f"Workspaces removed with a bare `git worktree remove` ({len(bare)}): their compose "
                f"image names were gone {min(bare):.1f}–{max(bare):.1f} s after the removal (the "
                "daemon's watcher sees the directory go; its rescan, every 10 s, is the fallback).",
            ]
    lines += [
        "",
        f"dockwarm at the end: {facts['all_warm'] or '(not run)'} — {facts['warm']}.",
        "",
        "dockwarm's own view at the end (`dockwarm prune --budget --dry-run`):",
        "",
        "```",
        facts["prune"].strip() or "(not run)",
        "```",
        "",
        "<details><summary>Every step</summary>",
        "",
        "| step | event | " + " | ".join(NAMES.get(c, c) for c in by) + " |",
        "| ---: | --- | " + " | ".join("---:" for _ in by) + " |",
    ]
    contenders = list(by)
    longest = max(by.values(), key=len)
    for idx, (step, event, _, _) in enumerate(longest):
        cells = []
        for c in contenders:
            p = next((p for p in by[c] if p[0] == step), None)
            cells.append(f"{gb(p[2])} ({p[3]} img)" if p else "")
        lines.append(f"| {step} | {event} | " + " | ".join(cells) + " |")
    lines += ["", "</details>", END, ""]
    section = "\n".join(lines)

    md = os.path.join(out, "benchmarks.md")
    text = open(md).read() if os.path.exists(md) else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(md, "w").write(text)


if __name__ == "__main__":
    main()
