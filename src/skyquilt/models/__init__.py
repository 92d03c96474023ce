"""Denoisers and autoencoders: configs, directories, weights, architectures, preconditioning.

May import `skyquilt.io` only. `config` is torch-free: the workflow reads model configs
with it when it is parsed; everything else here uses torch.
"""
