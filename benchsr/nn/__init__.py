"""Network pieces the method plugins share: RRDBNet/EDSR/RCAN from basicsr (blocks), GAN helpers
(gan), losses, lr schedules, and weight import/export (weights). Plugins import from here:
`from benchsr.nn import rrdbnet, ema, lsgan, milestones`."""
from benchsr.nn import blocks, gan, losses, schedules
from benchsr.nn.blocks import Normalised, edsr, log2_scale, rcan, rrdbnet
from benchsr.nn.gan import (PatchDiscriminator, as_floats, ema, from_signed, init_normal,
                            relativistic_gan_step, set_requires_grad, strided_first, to_signed)
from benchsr.nn.losses import gan_loss, load_perceptual, lsgan, tv_loss
from benchsr.nn.schedules import milestones
