"""`syncd run`: the long-running service and its systemd notifications."""
