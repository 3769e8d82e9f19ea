#!/usr/bin/env python3
"""Turns scripts/bench-seed.sh's results into docs/benchmarks.md (stdlib) or a PNG chart (matplotlib).

    bench-seed-report.py RESULTS.tsv FACTS.json OUT.md
    bench-seed-report.py --png RESULTS.tsv FACTS.json OUT.png

RESULTS.tsv rows: run, contender, scenario, seconds, wheels fetched, note. Scenarios: s1, s2, s3a,
s3b:<workspace> (two per run), s3total (fetches of all of s3), s5, s6, s4, failed.
Every block between <!-- NAME:start --> and <!-- NAME:end --> in an existing OUT.md is kept (the
hand-written analysis, other benchmarks' sections).
"""
import json
import os
import re
import statistics
import sys
from collections import defaultdict

CONTENDERS = ["seed", "dockwarm"]
LABEL = {"seed": "hand-made (seed)", "dockwarm": "dockwarm"}
SCENARIOS = [
    ("s1", "1. first build, empty builder cache"),
    ("s2", "2. second workspace (`git worktree add`) until it can up"),
    ("s3a", "3a. add a package, commit on a branch: that workspace can up"),
    ("s3b", "3b. `git checkout` of that branch in 2 other workspaces: each can up (mean)"),
    ("s5", "5. a teammate's source change fetched, then a new workspace on it (sources unlike any image's) until it can up"),
    ("s6", "6. a teammate's lockfile change fetched, then a new workspace on it until it can up"),
    ("s4", "4. `docker builder prune -af`, then a new workspace"),
]
SHORT = {"s1": "1 first build", "s2": "2 new workspace", "s3a": "3a add package",
         "s3b": "3b switch 2 workspaces", "s5": "5 new workspace, new sources",
         "s6": "6 fetched lockfile change", "s4": "4 after builder prune"}


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 6:
                parts += [""] * (6 - len(parts))
            run, who, scen, secs, fetched, note = parts[:6]
            rows.append({"run": int(run), "who": who, "scen": scen,
                         "secs": float(secs) if secs else None,
                         "fetched": int(fetched) if fetched else 0, "note": note})
    return rows


def collect(rows):
    """(who, scenario) -> per-run list of seconds and of fetches."""
    secs = defaultdict(dict)
    fetched = defaultdict(dict)
    s3b = defaultdict(lambda: defaultdict(list))
    s3b_fetch = defaultdict(lambda: defaultdict(int))
    failed = defaultdict(set)
    names = defaultdict(list)
    for r in rows:
        key = r["who"]
        if r["scen"] == "failed":
            failed[key].add(r["run"])
        elif r["scen"].startswith("s3b:"):
            s3b[key][r["run"]].append(r["secs"])
            s3b_fetch[key][r["run"]] += r["fetched"]
        elif r["scen"] == "s3total":
            fetched[(key, "s3total")][r["run"]] = r["fetched"]
            names[key].append(r["note"])
        else:
            secs[(key, r["scen"])][r["run"]] = r["secs"]
            fetched[(key, r["scen"])][r["run"]] = r["fetched"]
    for key, runs in s3b.items():
        for run, vals in runs.items():
            secs[(key, "s3b")][run] = statistics.mean(vals)
            fetched[(key, "s3b")][run] = s3b_fetch[key][run]
    return secs, fetched, failed, names


def med(d):
    vals = [v for v in d.values() if v is not None]
    return statistics.median(vals) if vals else None


def fmt_s(v):
    if v is None:
        return "—"
    return f"{v:.1f} s" if v >= 1 else f"{v:.2f} s"


def ratio(seed, dw):
    if seed is None or dw is None or dw <= 0:
        return "—"
    r = seed / dw
    return f"**{r:.1f}× faster**" if r >= 1.05 else (f"{1 / r:.1f}× slower" if r < 0.95 else "same")


def markdown(rows, facts, out):
    secs, fetched, failed, names = collect(rows)
    runs = facts.get("runs")
    L = []
    L.append("# Benchmark: the hand-made Docker caching against dockwarm")
    L.append("")
    L.append(f"Made by `scripts/bench-seed.sh` on {facts['date']}, dockwarm commit `{facts['dockwarm']}`, "
             f"median of {runs} run{'s' if runs != 1 else ''} per contender (issue 5). "
             "Project under test: `bench/app` (FastAPI + SQLAlchemy + Alembic + Pydantic + httpx …, "
             "59 packages installed from a 65-package `uv.lock`, uv installed from a wheel), "
             "built offline from a local PEP 503 index that logs every wheel download.")
    L.append("")
    L.append("\"Can up\" means `docker compose up` starts the service without building. For the hand-made "
             "way that is when `docker-compose build` returns; for dockwarm, when the workspace's compose "
             "image (`<project>-api`, with the new dependency fingerprint in scenario 3) exists. Every "
             "\"can up\" was then checked, untimed: `up -d`, `GET /health`, `down` (and `import slugify` after "
             "scenario 3).")
    L.append("")
    L.append("| scenario | hand-made (seed) | dockwarm | dockwarm vs seed | wheels fetched: seed / dockwarm |")
    L.append("| --- | ---: | ---: | --- | --- |")
    for scen, title in SCENARIOS:
        s, d = med(secs[("seed", scen)]), med(secs[("dockwarm", scen)])
        fs, fd = med(fetched[("seed", scen)]), med(fetched[("dockwarm", scen)])
        f = f"{fs:g} / {fd:g}" if fs is not None and fd is not None else "—"
        L.append(f"| {title} | {fmt_s(s)} | {fmt_s(d)} | {ratio(s, d)} | {f} |")
    fs, fd = med(fetched[("seed", "s3total")]), med(fetched[("dockwarm", "s3total")])
    if fs is not None or fd is not None:
        def common(xs):
            xs = [x for x in xs if x]
            return max(set(xs), key=xs.count) if xs else "none"
        L.append(f"| 3. all of scenario 3 (the change + both switches): wheels fetched | | | | "
                 f"{'—' if fs is None else format(fs, 'g')} / {'—' if fd is None else format(fd, 'g')} "
                 f"(seed: {common(names['seed'])}; dockwarm: {common(names['dockwarm'])}) |")
    L.append("")
    for who in CONTENDERS:
        if failed.get(who):
            L.append(f"**{LABEL[who]} failed in run(s) {sorted(failed[who])}**: see the script's output.")
            L.append("")
    L.append("Goals from issue 5: scenario 2 at least 20× faster than the hand-made way; scenario 3 fetches "
             "only the added package (python-slugify, which brings text-unidecode: 2 wheels). Goals from "
             "issue 9: 1 no slower than the hand-made way; 3a at least 1.5× faster; 2 and 5 at least 5× "
             "faster.")
    L.append("")
    L.append("## Every run")
    L.append("")
    L.append("| contender | scenario | " + " | ".join(f"run {i}" for i in range(1, runs + 1)) + " |")
    L.append("| --- | --- |" + " ---: |" * runs)
    for who in CONTENDERS:
        for scen, _ in SCENARIOS:
            cells = []
            for i in range(1, runs + 1):
                v = secs[(who, scen)].get(i)
                n = fetched[(who, scen)].get(i)
                cells.append("failed" if v is None and i in failed.get(who, ()) else
                             ("—" if v is None else f"{v:.1f} s ({n} wheels)"))
            L.append(f"| {LABEL[who]} | {SHORT[scen]} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("## Machine")
    L.append("")
    for k, label in [("cpu", "CPU"), ("memory", "memory"), ("kernel", "kernel"), ("engine", "Docker engine"),
                     ("storage", "storage driver"), ("buildx", "buildx"), ("compose_v1", "docker-compose (v1)"),
                     ("compose_v2", "docker compose (v2)"), ("index", "package index"),
                     ("load", "load average (1/5/15 min) before -> after"), ("total_s", "whole benchmark, seconds")]:
        L.append(f"- {label}: {facts.get(k, '?')}")
    L.append("")
    L.append("## How it was run")
    L.append("")
    L.append("- Each contender has its own repository (`bench/app` as a repository root) and project names, "
             "so they share no image tags; they do share the one engine and its BuildKit cache, so the script "
             "runs `docker builder prune -af` before each contender's run (and announces it), and the "
             "contenders alternate who goes first from run to run.")
    L.append("- Scenario 3: `bench/app-variant.sh add-package` in workspace 2 plus `git commit` on its "
             "branch; then `git checkout -b … ws2` in the main checkout and in workspace 3. Each switch is "
             "timed from its own checkout. The hand-made way builds in each workspace one after the other; "
             "dockwarm's two switches happen back to back and are waited for together.")
    L.append("- Scenario 4 starts from `docker builder prune -af`; the images the run made are kept (a prune "
             "of the builder does not remove images). The new workspace branches from the main checkout, so "
             "its sources equal an existing workspace's.")
    L.append(f"- The index listened on {facts.get('index', '?')}; builds reached it with compose's "
             "`build.network: host` (dockwarm passes it to its builds since e163091).")
    L.append("- The seed's cache volumes are created as it says (`dwbench_seed_global_uv_cache`, "
             "`…_pip_cache`); the bench service mounts none of them, and named volumes never reach a build.")
    L.append("")
    # Blocks other hands and scripts own (the analysis, other benchmarks' sections) are kept.
    if os.path.exists(out):
        for m in re.finditer(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", open(out).read(), re.S):
            L.append(m.group(0))
            L.append("")
    with open(out, "w") as f:
        f.write("\n".join(L))


def png(rows, facts, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    secs, fetched, failed, _ = collect(rows)
    scen = [s for s, _ in SCENARIOS]
    colors = {"seed": "#9aa5b1", "dockwarm": "#d9480f"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [2.2, 1]})
    h = 0.38
    ys = list(range(len(scen)))[::-1]
    for k, who in enumerate(CONTENDERS):
        vals = [med(secs[(who, s)]) for s in scen]
        pos = [y + (h / 2 if k == 0 else -h / 2) for y in ys]
        ax.barh(pos, [v or 0 for v in vals], height=h, color=colors[who], label=LABEL[who])
        for p, v, sc in zip(pos, vals, scen):
            label = "failed" if v is None else f"{v:.1f} s"
            sv = med(secs[("seed", sc)])
            if who == "dockwarm" and v and sv:
                r = sv / v
                label += f"  ({r:.0f}× faster)" if r >= 10 else (f"  ({r:.1f}× faster)" if r >= 1.05 else
                          (f"  ({1 / r:.1f}× slower)" if r < 0.95 else "  (same)"))
            ax.text((v or 0) + 0.3, p, label, va="center", fontsize=9,
                    fontweight="bold" if who == "dockwarm" else "normal")
        fv = [med(fetched[(who, s)]) or 0 for s in scen]
        bx.barh(pos, fv, height=h, color=colors[who], label=LABEL[who])
        for p, v in zip(pos, fv):
            bx.text(v + 0.8, p, f"{v:g}", va="center", fontsize=9)
    for a in (ax, bx):
        a.set_yticks(ys)
        a.spines[["top", "right"]].set_visible(False)
    ax.set_yticklabels([SHORT[s] for s in scen])
    bx.set_yticklabels([])
    xmax = max([v for who in CONTENDERS for s in scen for v in [med(secs[(who, s)])] if v] or [1])
    ax.set_xlim(0, xmax * 1.18)
    ax.set_xlabel("seconds until `docker compose up` can start (median, lower is better)")
    bx.set_xlabel("wheels fetched from the index (median)")
    fmax = max([med(fetched[(who, s)]) or 0 for who in CONTENDERS for s in scen] or [1])
    bx.set_xlim(0, max(fmax, 1) * 1.25)
    ax.legend(loc="lower right", frameon=False)
    fig.suptitle(f"bench/app (59 packages): hand-made caching vs dockwarm {facts['dockwarm']}, "
                 f"median of {facts['runs']} run{'s' if facts['runs'] != 1 else ''}, {facts['date']}", fontsize=11)
    fig.text(0.01, 0.01, f"{facts['cpu']}; Docker {facts['engine']}, {facts['storage']}", fontsize=8, color="#555")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(out, dpi=110)


def main():
    args = sys.argv[1:]
    as_png = args and args[0] == "--png"
    if as_png:
        args = args[1:]
    results, facts_path, out = args
    rows = load(results)
    facts = json.load(open(facts_path))
    (png if as_png else markdown)(rows, facts, out)


if __name__ == "__main__":
    main()
