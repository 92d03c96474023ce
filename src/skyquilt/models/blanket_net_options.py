"""BlanketNet's constructor arguments, in one place and without torch.

`BlanketNetOptions` are the `backbone.kwargs` of a model config that names the built-in
`blanket_net`: BlanketNet (skyquilt.models.blanket_net) is built from them, and the workflow
checks them, and the shapes of the weights they ask for (`state_shapes`), when it is parsed,
without importing torch.
"""

from collections.abc import Sequence
from dataclasses import dataclass

Shape = tuple[int, ...]
# Calendar features per state (skyquilt.models.calendar.FEATURES, which imports torch).
CALENDAR_FEATURES = 4


def check_dilations(dilations: Sequence[int] | None, blocks: int) -> list[int]:
    """One positive integer dilation per block (None: 1 each); ValueError otherwise."""
    if dilations is None:
        return [1] * blocks
    dilations = list(dilations)
    if len(dilations) != blocks or not all(
        isinstance(value, int) and value >= 1 for value in dilations
    ):
        raise ValueError(
            f"dilations {dilations} must be {blocks} integers >= 1, one per block (blocks)"
        )
    return dilations


def check_time_mixing(time_kernel: int, factorised: bool, dilations: Sequence[int]) -> None:
    """ValueError unless time_kernel is 0 or an odd integer >= 3, and factorised blocks have
    time mixing and no dilations (a spatial-only convolution has no time taps to dilate)."""
    integer = isinstance(time_kernel, int) and not isinstance(time_kernel, bool)
    if not integer or (time_kernel != 0 and (time_kernel < 3 or time_kernel % 2 == 0)):
        raise ValueError(f"time_kernel {time_kernel!r} must be 0 or an odd integer >= 3")
    if not isinstance(factorised, bool):
        raise ValueError(f"factorised {factorised!r} must be true or false")
    if factorised and time_kernel == 0:
        raise ValueError("factorised blocks need time_kernel >= 3 (they mix time only there)")
    if factorised and any(value != 1 for value in dilations):
        raise ValueError(
            f"dilations {list(dilations)} do not apply to factorised blocks "
            "(spatial-only convolutions): leave them out"
        )


TIME_PADDINGS = ("zeros", "reflect")


def check_time_padding(time_padding: str, time_kernel: int) -> None:
    """ValueError unless time_padding is one of TIME_PADDINGS, and "reflect" has time mixing
    to pad."""
    if time_padding not in TIME_PADDINGS:
        raise ValueError(f"time_padding {time_padding!r} must be one of {', '.join(TIME_PADDINGS)}")
    if time_padding != "zeros" and time_kernel == 0:
        raise ValueError(f"time_padding {time_padding!r} needs time mixing (time_kernel >= 3)")


@dataclass(frozen=True)
class BlanketNetOptions:
    """BlanketNet's arguments after (latent_shape, blanket_size), checked when made.

    hidden_channels: channels of the hidden states; blocks: residual blocks; embedding: size of
    the noise embedding; dilations: the time dilation of each block's 3x3x3 convolution, one per
    block (None: 1 each); time_kernel: taps of each block's time mixing (odd, >= 3; 0: none);
    factorised: spatial-only block convolutions (needs time_kernel, and no dilations);
    time_padding: what the time mixing reads beyond the blanket's ends, "zeros" or "reflect"
    (the blanket mirrored at its ends; needs time_kernel).
    Raises ValueError when they do not fit together.
    """

    hidden_channels: int = 32
    blocks: int = 3
    embedding: int = 64
    dilations: Sequence[int] | None = None
    time_kernel: int = 0
    factorised: bool = False
    time_padding: str = "zeros"

    def __post_init__(self) -> None:
        check_time_mixing(self.time_kernel, self.factorised, self.block_dilations)
        check_time_padding(self.time_padding, self.time_kernel)

    @property
    def block_dilations(self) -> list[int]:
        """The dilation of each block's convolution (1 each when `dilations` is None)."""
        return check_dilations(self.dilations, self.blocks)

    def state_shapes(self, latent_shape: Sequence[int]) -> dict[str, Shape]:
        """The state dict of BlanketNet for latents (C, H, W) = `latent_shape`, as name ->
        shape. Dilations and the blanket size change no shape."""
        channels, hidden = int(latent_shape[0]), int(self.hidden_channels)
        embedding = self.embedding
        kernel = (3, 3, 3)
        shapes = {
            "noise_embedding.0.weight": (embedding, embedding),
            "noise_embedding.0.bias": (embedding,),
            "noise_embedding.2.weight": (embedding, embedding),
            "noise_embedding.2.bias": (embedding,),
            "time_embedding.weight": (hidden, CALENDAR_FEATURES),
            "time_embedding.bias": (hidden,),
            "encode.weight": (hidden, channels, *kernel),
            "encode.bias": (hidden,),
        }
        block_kernel = (1, 3, 3) if self.factorised else kernel
        for block in range(self.blocks):
            shapes |= {
                f"blocks.{block}.modulation.weight": (2 * hidden, embedding),
                f"blocks.{block}.modulation.bias": (2 * hidden,),
                f"blocks.{block}.conv.weight": (hidden, hidden, *block_kernel),
                f"blocks.{block}.conv.bias": (hidden,),
            }
            if self.time_kernel:
                shapes[f"blocks.{block}.time_mixing.taps"] = (hidden, self.time_kernel)
        return shapes | {"decode.weight": (channels, hidden, *kernel), "decode.bias": (channels,)}
