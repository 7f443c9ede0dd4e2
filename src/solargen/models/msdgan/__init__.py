"""The seed's conditional GAN (Schmidt et al. 2020) as solar super-resolution; see `family`."""
