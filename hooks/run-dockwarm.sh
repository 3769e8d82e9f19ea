# --- run `dockwarm hook`: it never fails the hook and never keeps git waiting ---
# Its output goes to a file, not a pipe: a background process it leaves behind would hold a
# pipe open and keep us waiting for end-of-file. Only its first line is shown. A watchdog
# stops it after DOCKWARM_HOOK_TIMEOUT seconds (3): the hook command is meant to return at
# once and leave the work to the background, so waiting longer would only slow git down.
# Every command here is safe under `sh -e` (husky runs its hook files that way).
if [ -z "${DOCKWARM_HOOK_RUNNING:-}" ]; then
	dockwarm_cmd=
	if command -v dockwarm >/dev/null 2>&1; then
		dockwarm_cmd=dockwarm
	elif [ -n "$dockwarm_exe" ] && [ -x "$dockwarm_exe" ]; then
		dockwarm_cmd=$dockwarm_exe
	fi
	if [ -z "$dockwarm_cmd" ]; then
		if [ "$dockwarm_quiet_missing" != 1 ]; then
			echo "dockwarm: not found on PATH${dockwarm_exe:+ nor at $dockwarm_exe}; skipped the $dockwarm_hook hook (reinstall dockwarm, or run 'dockwarm hooks uninstall')" >&2 || :
		fi
	else
		dockwarm_out=$(mktemp "${TMPDIR:-/tmp}/dockwarm-hook.XXXXXX" 2>/dev/null) || dockwarm_out=
		printf '%s' "$dockwarm_input" | DOCKWARM_HOOK_RUNNING=1 "$dockwarm_cmd" hook "$dockwarm_hook" "$@" >"${dockwarm_out:-/dev/null}" 2>&1 &
		dockwarm_pid=$!
		(sleep "${DOCKWARM_HOOK_TIMEOUT:-3}" && kill "$dockwarm_pid") </dev/null >/dev/null 2>&1 &
		dockwarm_dog=$!
		wait "$dockwarm_pid" 2>/dev/null || :
		kill "$dockwarm_dog" 2>/dev/null || :
		if [ -n "$dockwarm_out" ]; then
			dockwarm_line=
			IFS= read -r dockwarm_line <"$dockwarm_out" 2>/dev/null || :
			if [ -n "$dockwarm_line" ]; then
				printf '%s\n' "$dockwarm_line" >&2 || :
			fi
			rm -f "$dockwarm_out" || :
		fi
	fi
fi
