"""skyquilt: prior weather trajectories from a latent diffusion model, composed from blankets."""

__version__ = "0.1.0"
