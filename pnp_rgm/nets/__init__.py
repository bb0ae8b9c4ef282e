"""Networks of the RGM family: U-Net generator (+ mapping network, AdaGN), MMSE twin (same
U-Net, sigma-conditioned, no z), conditional discriminator, and 2-D toy MLPs."""
from pnp_rgm.nets.discriminator import Discriminator
from pnp_rgm.nets.toy import ToyDiscriminator, ToyGenerator
from pnp_rgm.nets.unet import Generator, MappingNetwork, pad_to_multiple, timestep_embedding

__all__ = ["Generator", "MappingNetwork", "Discriminator", "ToyGenerator", "ToyDiscriminator",
           "build_generator", "build_discriminator", "count_params", "pad_to_multiple", "timestep_embedding"]


def build_generator(model_cfg) -> Generator:
    return Generator(model_cfg)


def build_discriminator(model_cfg) -> Discriminator:
    return Discriminator(model_cfg.channels, model_cfg.disc_width, model_cfg.disc_mult, model_cfg.emb_dim)


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
