"""SpotServe's role cores: the controller (timer queue, changes, lost instances), the request
pool (leases) and a replica (batch timing, commits, the drain rule)."""
