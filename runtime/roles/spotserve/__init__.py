"""SpotServe's roles: the controller that replays the availability trace, the request pool
(load balancer) and the GPU workers."""
