# >>> dockwarm-shim v1 @MODE@ >>>
# Added by `dockwarm hooks install`; `dockwarm hooks uninstall` takes it out again (and the file,
# if dockwarm created it). Husky regenerates .husky/_/ on every install, so dockwarm lives here,
# in the file husky's .husky/_/@HOOK@ runs. Identical in every clone, so it is safe to commit;
# where dockwarm is not installed it does nothing.
dockwarm_rc=$?
dockwarm_hook=@HOOK_Q@
dockwarm_exe=
dockwarm_quiet_missing=1
dockwarm_input=
@RUN_DOCKWARM@
(exit "$dockwarm_rc")
# <<< dockwarm-shim v1 <<<
