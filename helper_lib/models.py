"""The lecture's convolutional autoencoder (L16) and convolutional VAE (L17.5).

Both share the same convolutional stacks; they differ only in the bottleneck:

* ``ConvAutoencoder``: one ``Linear(3136, latent_dim)`` gives the code ``z``.
* ``ConvVAE``: two separate ``Linear(3136, latent_dim)`` layers give ``mu`` and ``logvar``,
  and ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``.

Shapes (``B`` = batch, ``D`` = ``latent_dim``): images ``[B, 1, 28, 28]`` in ``[0, 1]``;
codes ``[B, D]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvAutoencoder", "ConvVAE", "ConvStack", "ConvTranspose2d", "Trim", "count_parameters",
    "layer_shapes", "MODELS",
]

_FLAT = 64 * 7 * 7  # 3136 features after the encoder's conv stack


class Trim(nn.Module):
    """Crop ``[B, C, H, W]`` to ``[B, C, 28, 28]`` (the decoder produces 29 x 29)."""

    def __init__(self, size: int = 28) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, : self.size, : self.size]


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that, on CPU, adds its bias as a separate step.

    The same layer in every other respect: same parameters (``weight [C_in, C_out, k, k]``,
    ``bias [C_out]``), same ``state_dict`` keys, same output up to float rounding, and it still
    is an ``nn.ConvTranspose2d``. ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    Why: oneDNN, which runs convolutions on CPU, computes a transposed convolution's bias
    gradient inside its weight-gradient kernel, and for this decoder's two stride-2 layers that
    kernel is 3-4x slower with the bias than without it. Added outside, the bias gets its
    gradient from autograd as a plain sum over batch and pixels. A bf16 training step gets
    about 1.2x faster (``benchmarks/README.md``). On other devices, and when ``output_size`` is
    given, torch's fused path runs unchanged.
    """

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        if self.bias is None or input.device.type != "cpu" or output_size is not None:
            return super().forward(input, output_size)
        out = F.conv_transpose2d(input, self.weight, None, self.stride, self.padding,
                                 self.output_padding, self.groups, self.dilation)
        # Under bf16 autocast ``out`` is bf16; cast the fp32 bias so the sum stays bf16.
        return out + self.bias.to(out.dtype)[:, None, None]


class _ConvLeakyReLU(torch.autograd.Function):
    """``leaky_relu(conv(x, weight) + bias)`` as a single oneDNN call on CPU.

    ``x [B, C_in, H, W] -> y [B, C_out, H', W']`` for ``nn.Conv2d`` and ``nn.ConvTranspose2d``
    alike. The forward pass is torch's oneDNN convolution with the bias and the LeakyReLU fused
    into it (the op torch.compile itself emits for this pattern on CPU). The backward pass is
    the chain rule, written out with torch's own kernels: LeakyReLU's gradient from the saved
    output (``y > 0`` exactly where ``conv + bias > 0``, since the slope is positive), then
    torch's convolution backward for ``x``, ``weight`` and ``bias`` (for transposed
    convolutions the bias gradient is a plain sum over batch and pixels instead, as in
    ``ConvTranspose2d`` below).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, conv: nn.Module,
                slope: float) -> Tensor:
        if isinstance(conv, nn.ConvTranspose2d):
            y = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, weight, bias, conv.padding, conv.output_padding, conv.stride, conv.dilation,
                conv.groups, "leaky_relu", [slope], "")
        else:
            y = torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, conv.padding, conv.stride, conv.dilation, conv.groups,
                "leaky_relu", [slope], "")
        ctx.save_for_backward(x, weight, y)
        ctx.conv, ctx.slope = conv, slope
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, y = ctx.saved_tensors
        conv = ctx.conv
        transposed = isinstance(conv, nn.ConvTranspose2d)
        grad_pre = torch.ops.aten.leaky_relu_backward(grad_y, y, ctx.slope, True)
        # oneDNN's weight-gradient kernel also gives the bias gradient; that is free for
        # ordinary convolutions but 3-4x slower for transposed ones, so those take a plain sum.
        bias_in_kernel = ctx.needs_input_grad[2] and not transposed
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_pre, x, weight, [weight.shape[0]] if bias_in_kernel else None, conv.stride,
            conv.padding, conv.dilation, transposed, conv.output_padding, conv.groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias_in_kernel])
        if ctx.needs_input_grad[2] and transposed:
            grad_b = grad_pre.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _can_fuse(conv: nn.Module, act: nn.Module, x: Tensor) -> bool:
    """Whether ``act(conv(x))`` may run as one ``_ConvLeakyReLU`` call."""
    return (
        _FUSED_OPS_AVAILABLE
        and torch.backends.mkldnn.enabled
        and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
        and type(act) is nn.LeakyReLU
        and act.negative_slope > 0
        and conv.bias is not None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and x.device.type == "cpu"
        and x.dim() == 4
        and not (_has_hooks(conv) or _has_hooks(act) or nn.modules.module._global_forward_hooks
                 or nn.modules.module._global_forward_pre_hooks)
    )


try:
    _FUSED_OPS_AVAILABLE = (torch.backends.mkldnn.is_available()
                            and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
                            and hasattr(torch.ops.mkldnn, "_convolution_transpose_pointwise"))
except (AttributeError, RuntimeError):  # pragma: no cover - torch builds without oneDNN
    _FUSED_OPS_AVAILABLE = False


class ConvStack(nn.Sequential):
    """``nn.Sequential`` that, on CPU, runs each convolution + LeakyReLU pair as one step.

    It holds and prints the same layers as ``nn.Sequential``, with the same ``state_dict``
    keys, and computes the same function. Only the execution differs: on CPU, a ``Conv2d`` or
    ``ConvTranspose2d`` directly followed by ``LeakyReLU`` becomes a single oneDNN convolution
    with the bias and the activation fused in (``_ConvLeakyReLU``), instead of three passes over
    the activations (convolution, bias, LeakyReLU). A bf16 training step gets about 1.1x faster
    (``benchmarks/README.md``). Everything else runs layer by layer, as does the whole stack on
    other devices and whenever a layer has forward hooks (so ``layer_shapes`` and any
    activation hooks still see every layer).

    Under autocast the pair computes in the autocast dtype, as the convolution alone would.
    """

    def forward(self, x: Tensor) -> Tensor:
        layers = list(self)
        i = 0
        while i < len(layers):
            layer = layers[i]
            if i + 1 < len(layers) and _can_fuse(layer, layers[i + 1], x):
                dtype = (torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu")
                         else x.dtype)
                if dtype in (torch.float32, torch.bfloat16):
                    # Casts outside the Function, so autograd routes the gradients back to the
                    # fp32 parameters exactly as autocast does for a plain convolution.
                    x = _ConvLeakyReLU.apply(x.to(dtype), layer.weight.to(dtype),
                                             layer.bias.to(dtype), layer,
                                             float(layers[i + 1].negative_slope))
                    i += 2
                    continue
            x = layer(x)
            i += 1
        return x


def _encoder_stack() -> ConvStack:
    """``[B, 1, 28, 28] -> [B, 3136]``: four 3x3 convolutions, 28 -> 28 -> 14 -> 7 -> 7."""
    return ConvStack(
        nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1),
        nn.LeakyReLU(0.01),
        nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.01),
        nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.01),
        nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1),
        nn.Flatten(),
    )


def _decoder_stack(latent_dim: int) -> ConvStack:
    """``[B, D] -> [B, 1, 28, 28]`` in (0, 1): 7 -> 7 -> 13 -> 27 -> 29, trimmed to 28.

    ``ConvTranspose2d`` is this module's drop-in subclass of ``nn.ConvTranspose2d`` (faster
    bias gradient on CPU, otherwise identical); ``ConvStack`` fuses each convolution with the
    LeakyReLU after it on CPU.
    """
    return ConvStack(
        nn.Linear(latent_dim, _FLAT),
        nn.Unflatten(1, (64, 7, 7)),
        ConvTranspose2d(64, 64, kernel_size=3, stride=1, padding=1),
        nn.LeakyReLU(0.01),
        ConvTranspose2d(64, 64, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.01),
        ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=0),
        nn.LeakyReLU(0.01),
        ConvTranspose2d(32, 1, kernel_size=3, stride=1, padding=0),
        Trim(28),
        nn.Sigmoid(),
    )


class ConvAutoencoder(nn.Module):
    """The L16 convolutional autoencoder, x -> z -> x_hat.

    200,963 parameters at ``latent_dim=2``.
    """

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(_encoder_stack(), nn.Linear(_FLAT, latent_dim))
        self.decoder = _decoder_stack(latent_dim)

    def encode(self, x: Tensor) -> Tensor:
        """``[B, 1, 28, 28] -> z [B, D]``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """``z [B, D] -> x_hat [B, 1, 28, 28]`` in (0, 1)."""
        return self.decoder(z)

    def embed(self, x: Tensor) -> Tensor:
        """The deterministic code used for plots: here simply ``z``, ``[B, D]``."""
        return self.encode(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, 1, 28, 28] -> (z [B, D], x_hat [B, 1, 28, 28])``."""
        z = self.encode(x)
        return z, self.decode(z)


class ConvVAE(nn.Module):
    """The L17.5 convolutional VAE. 207,237 parameters at ``latent_dim=2``.

    ``forward`` returns ``(z, mu, logvar, x_hat)``, each ``[B, D]`` except ``x_hat``
    (``[B, 1, 28, 28]``). ``z`` is a fresh random sample on every call, in train and eval mode.
    """

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _encoder_stack()
        self.z_mean = nn.Linear(_FLAT, latent_dim)
        self.z_log_var = nn.Linear(_FLAT, latent_dim)
        self.decoder = _decoder_stack(latent_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, 1, 28, 28] -> (mu [B, D], logvar [B, D])``, the parameters of q(z | x)."""
        h = self.encoder(x)
        return self.z_mean(h), self.z_log_var(h)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """``z = mu + sigma * eps`` with ``sigma = exp(logvar / 2)``, ``eps ~ N(0, I)``; ``[B, D]``.

        ``eps`` is drawn with ``randn_like``, so it lands on ``mu``'s device and dtype; the
        randomness sits in ``eps`` alone, so gradients flow to both ``mu`` and ``logvar``.
        """
        eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor) -> Tensor:
        """``z [B, D] -> x_hat [B, 1, 28, 28]`` in (0, 1)."""
        return self.decoder(z)

    def embed(self, x: Tensor) -> Tensor:
        """The deterministic code used for plots: the posterior mean ``mu``, ``[B, D]``."""
        return self.encode(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``x [B, 1, 28, 28] -> (z, mu, logvar, x_hat)``."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return z, mu, logvar, self.decode(z)


MODELS: dict[str, type[nn.Module]] = {"ConvVAE": ConvVAE, "ConvAutoencoder": ConvAutoencoder}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_shapes(model: nn.Module, x: Tensor) -> list[tuple[str, str, tuple[int, ...]]]:
    """Run ``x`` through ``model`` and record every layer's output, in call order.

    Returns rows ``(name, layer, output_shape)``, e.g.
    ``("encoder.0", "Conv2d(1, 32, ...)", (B, 32, 28, 28))``. Only leaf layers are listed
    (not the containers), so the rows read like the architecture from input to output.
    """
    rows: list[tuple[str, str, tuple[int, ...]]] = []
    hooks = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            def hook(mod: nn.Module, inp: object, out: Tensor, name: str = name) -> None:
                rows.append((name, repr(mod), tuple(out.shape)))
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows
