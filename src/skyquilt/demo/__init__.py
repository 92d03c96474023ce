"""The embedded demo: an ERA5-like dataset from a forced shallow-water model on the sphere, a
small autoencoder trained on it, the latent dump, and a small blanket denoiser on the latents.

Modules: `shallow_water` (the forced model), `dataset` (zarr in WeatherBench2 layout +
normalisation statistics), `autoencoder` (architecture + directory I/O), `train_autoencoder`,
`latents` (dump + latent statistics), `train_denoiser`, `sanity` (decoded samples vs data),
`plan` (settings of the `demo:` config section and output paths), `training` and `files`
(shared helpers).
"""
