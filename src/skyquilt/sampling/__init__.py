"""The method: blankets, their composition, timestamps, seeds and the generation of a member.

May import `skyquilt.models`, `skyquilt.diffusion` and `skyquilt.io`; never the jobs,
scores, plots or the planning layer. `request`, `blankets` and `seeding` are torch-free, so
that the plan can use them when the workflow is parsed.
"""
