"""Putting roles on hosts: placement (pure), hosts (local processes or SSH), the supervisor
that owns each role process, and the launcher that starts, watches and stops them."""
