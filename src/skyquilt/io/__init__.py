"""Storage: atomic writes, the shard format, the aggregate store, decoded forecasts.

The lowest layer: it may import only third-party storage libraries (zarr, xarray, dask,
numpy, yaml), never torch or another skyquilt layer.
"""
