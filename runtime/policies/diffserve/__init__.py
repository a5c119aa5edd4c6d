"""DiffServe's decisions: allocation plans (one module per approach), routing, batching,
the drop rule and the cascade's deferral rule."""
