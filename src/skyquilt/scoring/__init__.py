"""Scores of decoded ensembles against the truth, and the baselines they are compared with.

May import `skyquilt.sampling` (blanket arithmetic, for seams) and `skyquilt.io`; never the
jobs, the plots or the planning layer.
"""
