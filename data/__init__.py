"""Stage 2: the HDF5 feature store, label readers and training datasets."""
