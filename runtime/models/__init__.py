"""Real models for the workers: diffusion pipelines (hub ids, local directories, or the tiny
random-weight ones built offline), and the discriminator that scores light images."""
