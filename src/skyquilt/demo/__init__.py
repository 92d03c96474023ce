"""The embedded demo: a simulated dataset, its autoencoder, latents and blanket denoiser.

An ERA5-like dataset from a forced shallow-water model on the sphere, a small autoencoder
trained on it, the latent dump, and a small blanket denoiser on the latents.

Modules: `shallow_water` (the forced model), `dataset` (zarr in WeatherBench2 layout +
normalisation statistics), `train_autoencoder` (of the built-in `skyquilt.models.autoencoder`),
`latents` (dump + latent statistics), `train_denoiser`, `sanity` (decoded samples vs data),
`training` (shared budget). Its settings and paths are planned by `skyquilt.planning.demo`.
Below the jobs (skyquilt.jobs.demo runs it) and above every other layer, which it may import.
"""
