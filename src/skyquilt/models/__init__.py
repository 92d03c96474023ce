"""Denoisers and autoencoders: configs, directories, weights, architectures, preconditioning.

May import `skyquilt.io` only. `config`, `weight_files`, `backbones` and `blanket_net_options`
are torch-free: the workflow reads model configs and weight-file headers with them when it is
parsed; everything else here uses torch.
"""
