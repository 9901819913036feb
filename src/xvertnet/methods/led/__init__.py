"""The LED seed: a CycleGAN degradation model and a conditional diffusion enhancer."""
