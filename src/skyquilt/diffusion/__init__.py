"""Diffusion: noise schedules and reverse samplers for the VE (EDM-style) denoiser.

Submodules are imported where they are used (`skyquilt.diffusion.samplers`, `.schedules`,
`.options`), so that reading sampler options does not import torch. May import
`skyquilt.io` only.
"""
