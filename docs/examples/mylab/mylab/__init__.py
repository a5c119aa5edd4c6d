"""An example of a user's own package holding a servelab approach (docs/extending.md)."""
