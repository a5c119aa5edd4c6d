"""Measured image quality: Fréchet distance between feature distributions of served and
reference images (FID with InceptionV3 features; any extractor for offline use)."""
