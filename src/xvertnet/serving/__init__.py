"""Serving enhanced radiographs where they live: a DICOM node between modalities, PACS and viewers."""
