"""Pictures a person looks at: maps, animations and score plots, drawn with matplotlib.

May import `skyquilt.scoring` and `skyquilt.io`; never torch, the jobs or the planning layer.
"""
