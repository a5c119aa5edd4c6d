"""servelab's Hydra plugins: the union-of-grids sweeper (`hydra/sweeper=grids`)."""
