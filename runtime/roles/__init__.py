"""The runtime roles, each its own OS process: `python -m runtime.roles ROLE --spec FILE --name NAME`."""
