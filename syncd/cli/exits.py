"""The exit codes every command shares (SPEC, "Exit codes")."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
