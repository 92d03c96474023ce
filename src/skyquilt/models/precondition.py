"""EDM preconditioning of a blanket backbone (Karras et al. 2022) with sigma_data = 1.

D(x, s) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s), features), with
c_skip = 1 / (s^2 + 1), c_out = s / sqrt(s^2 + 1), c_in = 1 / sqrt(s^2 + 1),
c_noise = log(s) / 4. Latents are standardised, hence sigma_data = 1.
"""

import torch
from torch import Tensor, nn


class BlanketDenoiser(nn.Module):
    """E[x | x_t] for a blanket: x_t (B, K, C, H, W), sigma (B,), features (B, K, 4)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x_t: Tensor, sigma: Tensor, time_features: Tensor) -> Tensor:
        """Denoise a batch of blankets.

        Arguments:
            x_t: (B, K, C, H, W) noisy blankets, x + sigma eps.
            sigma: (B,) their noise levels.
            time_features: (B, K, 4) calendar features of each state.

        Returns:
            D(x_t, sigma): (B, K, C, H, W), the estimate of E[x | x_t].
        """
        sigma = sigma.reshape(-1, *([1] * (x_t.dim() - 1)))
        variance = sigma**2 + 1
        c_skip, c_out, c_in = 1 / variance, sigma / variance.sqrt(), 1 / variance.sqrt()
        c_noise = sigma.flatten().log() / 4
        output = self.backbone(c_in * x_t, c_noise, time_features)
        return c_skip * x_t + c_out * output.to(x_t.dtype)


def denoising_loss(
    denoiser: BlanketDenoiser, x: Tensor, sigma: Tensor, time_features: Tensor
) -> Tensor:
    """EDM loss: mean of lambda(s) |D(x + s eps, s) - x|^2 with lambda(s) = (s^2 + 1) / s^2.

    The noise eps is drawn from torch's global generator.

    Arguments:
        denoiser: the preconditioned denoiser D.
        x: (B, K, C, H, W) clean blankets.
        sigma: (B,) a noise level per blanket.
        time_features: (B, K, 4) calendar features of each state.

    Returns:
        The loss: () the mean over blankets of the weighted mean squared error.
    """
    noisy = x + sigma.reshape(-1, 1, 1, 1, 1) * torch.randn_like(x)
    weight = (sigma**2 + 1) / sigma**2
    error = (denoiser(noisy, sigma, time_features) - x).square().mean(dim=(1, 2, 3, 4))
    return (weight * error).mean()
