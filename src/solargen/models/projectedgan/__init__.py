"""ProjectedGAN's discriminator (Sauer et al. 2021): DiffAugment, frozen F, multi-scale patch Ds."""
