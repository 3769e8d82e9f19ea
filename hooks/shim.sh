#!/bin/sh
# dockwarm-shim v1
# dockwarm-hook: @HOOK@
# dockwarm-orig: @ORIG@
#
# Written by `dockwarm hooks install`; `dockwarm hooks uninstall` puts back, byte for byte, the
# hook that was here before (moved aside to the dockwarm-orig name above, and run from here).
# Change that file, not this one: this one is rewritten on every install.
#
# - Exit status: the previous hook's, so dockwarm never changes what git sees.
# - GIT_DIR: in a linked worktree git runs hooks at the worktree's top with GIT_DIR (and at
#   times GIT_WORK_TREE) exported. This shim never runs git: a `git -C somewhere` from here
#   would still act on this worktree's GIT_DIR. The previous hook and dockwarm both get the
#   environment untouched, so they see the worktree git ran the hook for.
# - $0, not a recorded path, finds the previous hook: the repository may move, and pre-commit
#   may rename this file to @HOOK@.legacy and run it from there.

dockwarm_hook=@HOOK_Q@
dockwarm_orig=@ORIG_Q@
dockwarm_exe=@EXE_Q@
dockwarm_quiet_missing=0

case $0 in
*/*) dockwarm_dir=${0%/*} ;;
*) dockwarm_dir=. ;;
esac

# post-rewrite gets the list of rewritten commits on stdin: read it once, give it to both.
# The trailing "." keeps trailing newlines that $(...) would strip.
dockwarm_stdin=@STDIN@
dockwarm_input=
dockwarm_want=1
if [ "$dockwarm_stdin" = 1 ]; then
	dockwarm_input=$(cat; echo .)
	dockwarm_input=${dockwarm_input%.}
elif [ "$dockwarm_stdin" = refs ]; then
	# reference-transaction runs on every ref update: commits, branch creation, fetches. Only
	# a committed transaction that moved a remote-tracking ref concerns dockwarm; anything
	# else leaves here without starting a process. Lines are read with the shell's own
	# `read` (no fork); past 64 of them (a big fetch) `cat` takes the rest in one go.
	# git fetch moves each ref in a transaction of its own: only the refs the daemon watches
	# (listed beside this hook, read with `read`) start dockwarm; without the list, any
	# remote-tracking ref does.
	dockwarm_want=0
	dockwarm_refs=$dockwarm_dir/$dockwarm_hook.dockwarm-refs
	dockwarm_remote() {
		if [ ! -f "$dockwarm_refs" ]; then
			dockwarm_want=1
			return 0
		fi
		while IFS= read -r dockwarm_ref; do
			case $1 in
			*" $dockwarm_ref" | *" $dockwarm_ref
"*)
				dockwarm_want=1
				return 0
				;;
			esac
		done <"$dockwarm_refs"
	}
	if [ "${1:-}" = committed ]; then
		dockwarm_stdin=1
		dockwarm_n=0
		while [ "$dockwarm_n" -lt 64 ] && IFS= read -r dockwarm_line; do
			dockwarm_input="$dockwarm_input$dockwarm_line
"
			case $dockwarm_line in
			*" refs/remotes/"*) dockwarm_remote "$dockwarm_line" ;;
			esac
			dockwarm_n=$((dockwarm_n + 1))
		done
		if [ "$dockwarm_n" -ge 64 ]; then
			dockwarm_line=$(cat; echo .)
			dockwarm_input="$dockwarm_input${dockwarm_line%.}"
			case $dockwarm_line in
			*" refs/remotes/"*) dockwarm_remote "${dockwarm_line%.}" ;;
			esac
		fi
	fi
fi

# Git ignores a hook that is not executable; so does the chain.
dockwarm_rc=0
if [ -n "$dockwarm_orig" ] && [ -f "$dockwarm_dir/$dockwarm_orig" ] && [ -x "$dockwarm_dir/$dockwarm_orig" ]; then
	if [ "$dockwarm_stdin" = 1 ]; then
		printf '%s' "$dockwarm_input" | "$dockwarm_dir/$dockwarm_orig" "$@"
	else
		"$dockwarm_dir/$dockwarm_orig" "$@"
	fi
	dockwarm_rc=$?
fi

if [ "$dockwarm_want" = 1 ]; then
@RUN_DOCKWARM@
fi
exit "$dockwarm_rc"
