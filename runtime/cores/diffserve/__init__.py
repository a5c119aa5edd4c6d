"""DiffServe's role cores: the controller, the load balancer and a worker."""
