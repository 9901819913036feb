"""The demo data: chest CTs, their vertebra labels, and radiographs simulated from them (DRRs)."""
