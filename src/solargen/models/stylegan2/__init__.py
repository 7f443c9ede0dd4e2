"""StyleGAN2 (Karras et al. 2020): mapping + modulated-conv synthesis, ResNet discriminator, losses."""
