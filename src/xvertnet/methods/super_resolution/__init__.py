"""The super-resolution seed: SRCNN, VDSR, and iterative dehazing."""
