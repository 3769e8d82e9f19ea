# --- run `dockwarm hook`: it never fails the hook and never keeps git waiting ---
# dockwarm prints at most one line (to stderr) and stops itself after DOCKWARM_HOOK_TIMEOUT
# seconds (3) whatever it is doing; the work it starts goes to the background with its output
# in dockwarm's log, never on this hook's pipes, so git does not wait for it. No helper process
# is started here (no mktemp, no watchdog): each fork costs git time, and the hook runs on every
# checkout. Every command here is safe under `sh -e` (husky runs its hook files that way).
if [ -z "${DOCKWARM_HOOK_RUNNING:-}" ]; then
	# The dockwarm that installed the hook first: another (older) one earlier on PATH would
	# answer with its own idea of the state. PATH only when that one has moved or gone.
	dockwarm_cmd=
	if [ -n "$dockwarm_exe" ] && [ -x "$dockwarm_exe" ]; then
		dockwarm_cmd=$dockwarm_exe
	elif command -v dockwarm >/dev/null 2>&1; then
		dockwarm_cmd=dockwarm
	fi
	if [ -z "$dockwarm_cmd" ]; then
		if [ "$dockwarm_quiet_missing" != 1 ]; then
			echo "dockwarm: not found on PATH${dockwarm_exe:+ nor at $dockwarm_exe}; skipped the $dockwarm_hook hook (reinstall dockwarm, or run 'dockwarm hooks uninstall')" >&2 || :
		fi
	elif [ -n "$dockwarm_input" ]; then
		printf '%s' "$dockwarm_input" | DOCKWARM_HOOK_RUNNING=1 "$dockwarm_cmd" hook "$dockwarm_hook" "$@" >/dev/null || :
	else
		DOCKWARM_HOOK_RUNNING=1 "$dockwarm_cmd" hook "$dockwarm_hook" "$@" </dev/null >/dev/null || :
	fi
fi
