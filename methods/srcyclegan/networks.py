"""SR-CycleGAN networks: G1 (SR generator), G2 (downscaler) (the PatchGAN discriminator is benchsr.gan's).

Built as in the authors' code: InstanceNorm without affine, bias on every conv, reflect padding.
At ngf = ndf = 64, 9 res-blocks, 1 channel they hit the parameter checkpoints of methods.md
(G1 802,222 / G2 12,936,769 / D 2,762,689 at 8x).
"""
from __future__ import annotations

from torch import nn

from benchsr.nn import log2_scale


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False)


def _act(kind: str) -> nn.Module:
    return nn.PReLU() if kind == "prelu" else nn.ReLU(inplace=True)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch),
        )

    def forward(self, x):
        return x + self.body(x)


def _down(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), _norm(cout), nn.ReLU(inplace=True)]


def _up_transposed(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), _norm(cout),
            nn.ReLU(inplace=True)]


def _up_shuffle(ch: int) -> list[nn.Module]:
    # conv C -> 2C, shuffle by 2 -> C/2 channels at twice the size
    return [nn.Conv2d(ch, 2 * ch, 3, padding=1), _norm(2 * ch), nn.PixelShuffle(2), nn.PReLU()]


class G1(nn.Module):
    """LR -> SR generator (x scale).

    upsampler='pixelshuffle', down_blocks=False is the paper's "network modification".
    upsampler='transposed', down_blocks=True is CycleGAN's ResNet generator plus extra up-blocks
    (Network1 / Network3 of Table 2). kernel_mid / kernel_out are Table 7's two kernel sizes.
    """

    def __init__(self, scale: int, channels: int = 1, ngf: int = 64, n_blocks: int = 9,
                 upsampler: str = "pixelshuffle", down_blocks: bool = False,
                 kernel_mid: int = 3, kernel_out: int = 7):
        super().__init__()
        if upsampler not in ("pixelshuffle", "transposed"):
            raise ValueError(f"upsampler must be pixelshuffle or transposed, got {upsampler!r}")
        act = "prelu" if upsampler == "pixelshuffle" else "relu"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf),
                                   _act(act)]
        ch = ngf
        if down_blocks:
            for _ in range(2):
                layers += _down(ch, 2 * ch)
                ch *= 2
        layers += [ResBlock(ch) for _ in range(n_blocks)]
        if not down_blocks:
            layers += [nn.ReflectionPad2d(kernel_mid // 2), nn.Conv2d(ch, ch, kernel_mid),
                       _norm(ch), nn.PReLU()]
        n_up = log2_scale(scale) + (2 if down_blocks else 0)
        for _ in range(n_up):
            layers += _up_shuffle(ch) if upsampler == "pixelshuffle" else _up_transposed(ch, ch // 2)
            ch //= 2
        layers += [nn.ReflectionPad2d(kernel_out // 2), nn.Conv2d(ch, channels, kernel_out),
                   nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class G2(nn.Module):
    """HR -> LR downscaler: CycleGAN's ResNet generator followed by log2(k) stride-2 conv blocks."""

    def __init__(self, scale: int, channels: int = 1, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf),
                                   nn.ReLU(inplace=True)]
        ch = ngf
        for _ in range(2):
            layers += _down(ch, 2 * ch)
            ch *= 2
        layers += [ResBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += _up_transposed(ch, ch // 2)
            ch //= 2
        for _ in range(log2_scale(scale)):
            layers += _down(ch, 2 * ch)
            ch *= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)
