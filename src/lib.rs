//! dockwarm: keeps Docker builds warm across the git worktrees of one developer.
