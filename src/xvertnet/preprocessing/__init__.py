"""Spine ROIs, burned-in labels, and XVertNet's preprocessing (WLS, HFC: Eqs. 1-6)."""
