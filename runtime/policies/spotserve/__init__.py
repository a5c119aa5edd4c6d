"""SpotServe's decisions: the latency model and configuration optimizer, the device mapper
(which surviving GPU takes which new position) and the migration planner (what moves where,
how long it takes, and how many decode steps a replica commits before it stops)."""
