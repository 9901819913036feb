"""The GE seed: an interpretable pixel-wise LUT mapping."""
