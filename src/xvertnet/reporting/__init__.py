"""Figures, panels, the gallery, the design study's write-up and the seeds' tables."""
