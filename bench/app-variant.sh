#!/usr/bin/env bash
# Apply a prepared dependency change to a copy of the benchmark app (scenario 3: "adds one package").
#
#   bench/app-variant.sh list
#   bench/app-variant.sh add-package DEST     # DEST: the app's root in a worktree (holds pyproject.toml)
#
# A variant is a folder bench/app/variants/NAME/ with a pyproject.toml and the uv.lock that
# `uv lock` produced for it against the same local index (bench/index/relock.sh makes both locks),
# so it builds offline like the base app. The only variant so far:
#   add-package: adds "python-slugify>=8.0" to [project].dependencies; the lock gains
#                python-slugify 9.2.0 and its one dependency text-unidecode 1.3 (66 -> 68 entries),
#                every other entry unchanged. A build with a warm uv cache fetches exactly those 2 wheels.
# It copies the two files over DEST's (as `uv add python-slugify` would have rewritten them) and
# prints what changed; commit them in DEST to make the change a git event (dockwarm's hooks see it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
variants="$here/app/variants"

if [ "${1:-}" = list ] || [ $# -eq 0 ]; then
    ls "$variants"
    exit 0
fi
[ $# -eq 2 ] || { echo "usage: $0 VARIANT DEST | list" >&2; exit 2; }
src="$variants/$1"
dest=$2
[ -f "$src/pyproject.toml" ] && [ -f "$src/uv.lock" ] || { echo "app-variant: no variant $1 in $variants" >&2; exit 2; }
[ -f "$dest/pyproject.toml" ] || { echo "app-variant: $dest has no pyproject.toml" >&2; exit 2; }

before=$(grep -c '^\[\[package\]\]' "$dest/uv.lock" 2>/dev/null || echo 0)
cp "$src/pyproject.toml" "$src/uv.lock" "$dest/"
after=$(grep -c '^\[\[package\]\]' "$dest/uv.lock")
echo "app-variant: $1 applied to $dest (uv.lock: $before -> $after packages)"
