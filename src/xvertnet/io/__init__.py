"""Files and data: readers and writers, the HDF5 shard store, data sets and their download, ingest, the DICOM node."""
