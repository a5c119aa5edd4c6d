"""Pure decision code: no I/O, no clocks, no threads. Roles feed observations in and apply
what comes back; tests call these directly."""
