"""Drop-in layers that make the lecture's models train fast and correctly under mixed precision.

``helper_lib.models`` builds the lecture's architectures from these, so students reading the
models see plain ``Conv2d`` / ``LeakyReLU`` / ``ConvTranspose2d`` / ``Sigmoid`` layers. The
first two only change *how* those layers run on a CPU, never *what* they compute (the tests
compare every output and gradient with torch's own layers):

* ``ConvTranspose2d``: a subclass of ``nn.ConvTranspose2d`` that adds its bias as a separate
  step on CPU, because oneDNN's fused bias gradient is 3-4x slower for these layers.
* ``ConvStack``: an ``nn.Sequential`` that runs each convolution + LeakyReLU pair as a single
  oneDNN call on CPU (``_ConvLeakyReLU``), with the backward pass written out from torch's
  own kernels.

Measurements for both: ``benchmarks/README.md``.

* ``Sigmoid``: ``nn.Sigmoid`` that always computes in fp32, also under bf16 autocast, where a
  bf16 output would round every value above about 0.998 to exactly 1.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import env_flag

__all__ = ["ConvStack", "ConvTranspose2d", "Sigmoid", "FUSED_ENV_VAR", "fusion_enabled"]


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


class Sigmoid(nn.Sigmoid):
    """``nn.Sigmoid`` that computes in fp32 and returns fp32, whatever the input dtype.

    ``[B, ...] -> [B, ...]``. Under bf16 autocast the decoder's last convolution runs in bf16,
    and a bf16 sigmoid has only 8 significant bits: every output above about 0.998 becomes
    exactly 1.0. For the binary cross-entropy that is a real error, not rounding: against a
    grey target pixel the loss saturates at torch's clamp (``-log(1 - 1.0)`` is capped at
    100) and the pixel's gradient is exactly zero, so training cannot pull it back. In fp32
    the output stays below 1 for logits up to about 16. The cost is one fp32 pass over the
    ``[B, 1, 28, 28]`` output.
    """

    def forward(self, input: Tensor) -> Tensor:
        return torch.sigmoid(input.float())


class _ConvLeakyReLU(torch.autograd.Function):
    """``leaky_relu(conv(x, weight) + bias)`` as a single oneDNN call on CPU.

    ``x [B, C_in, H, W] -> y [B, C_out, H', W']`` for ``nn.Conv2d`` and ``nn.ConvTranspose2d``
    alike. The forward pass is torch's oneDNN convolution with the bias and the LeakyReLU fused
    into it (the op torch.compile itself emits for this pattern on CPU). The backward pass is
    the chain rule, written out with torch's own kernels: LeakyReLU's gradient from the saved
    output (``y > 0`` exactly where ``conv + bias > 0``, since the slope is positive), then
    torch's convolution backward for ``x``, ``weight`` and ``bias`` (for transposed
    convolutions the bias gradient is a plain sum over batch and pixels instead, as in
    ``ConvTranspose2d`` above).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, conv: nn.Module,
                slope: float) -> Tensor:
        if isinstance(conv, nn.ConvTranspose2d):
            y = _OPS._convolution_transpose_pointwise(
                x, weight, bias, conv.padding, conv.output_padding, conv.stride, conv.dilation,
                conv.groups, "leaky_relu", [slope], "")
        else:
            y = _OPS._convolution_pointwise(
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
    """Forward or backward hooks on ``module``: the fused step would skip them, so it is off."""
    return any(getattr(module, name, None) for name in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def _global_hooks() -> bool:
    module = nn.modules.module
    return any(getattr(module, name, None) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks"))


#: torch's private oneDNN ops that the fused step calls (replaced by the tests).
_OPS = torch.ops.mkldnn
#: The environment variable that turns the fused step off: ``VAE_FUSED=0``.
FUSED_ENV_VAR = "VAE_FUSED"
_FUSION = {"failed": False}


def _fused_ops_available() -> bool:
    try:
        return (torch.backends.mkldnn.is_available()
                and hasattr(_OPS, "_convolution_pointwise")
                and hasattr(_OPS, "_convolution_transpose_pointwise"))
    except (AttributeError, RuntimeError):  # torch builds without oneDNN
        return False


def fusion_enabled() -> bool:
    """Whether ``ConvStack`` may fuse on CPU: the private ops exist, they have not failed in
    this process, and ``VAE_FUSED`` is not ``0``."""
    return env_flag(FUSED_ENV_VAR, True) and not _FUSION["failed"] and _fused_ops_available()


def _fusion_failed(err: BaseException) -> None:
    """Turn fusion off for the rest of the process, with one warning."""
    _FUSION["failed"] = True
    warnings.warn(f"helper_lib: torch's oneDNN convolution + LeakyReLU op failed here "
                  f"({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''});"
                  " using the plain layers from now on (same results, a little slower). "
                  f"Set {FUSED_ENV_VAR}=0 to skip the attempt.", RuntimeWarning, stacklevel=3)


def _can_fuse(conv: nn.Module, act: nn.Module, x: Tensor) -> bool:
    """Whether ``act(conv(x))`` may run as one ``_ConvLeakyReLU`` call."""
    return (
        x.device.type == "cpu"
        and fusion_enabled()
        and torch.backends.mkldnn.enabled
        and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
        and type(act) is nn.LeakyReLU
        and act.negative_slope > 0
        and conv.bias is not None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and x.dim() == 4
        and not (_has_hooks(conv) or _has_hooks(act) or _global_hooks())
    )


@functools.cache
def _onednn_has_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions here (any AVX-512 or AVX-NE-CONVERT CPU).

    Its fused ops raise for bf16 elsewhere (e.g. on AVX2-only laptops), where an explicit
    ``precision="bf16"`` must fall back to torch's layers, which have a slow bf16 path.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch builds without oneDNN
        return False


class ConvStack(nn.Sequential):
    """``nn.Sequential`` that, on CPU, runs each convolution + LeakyReLU pair as one step.

    It holds and prints the same layers as ``nn.Sequential``, with the same ``state_dict``
    keys, and computes the same function. Only the execution differs: on CPU, a ``Conv2d`` or
    ``ConvTranspose2d`` directly followed by ``LeakyReLU`` becomes a single oneDNN convolution
    with the bias and the activation fused in (``_ConvLeakyReLU``), instead of three passes over
    the activations (convolution, bias, LeakyReLU). A bf16 training step gets about 1.1x faster
    (``benchmarks/README.md``). Everything else runs layer by layer, as does the whole stack on
    other devices, under bf16 autocast on CPUs where oneDNN has no bf16 (AVX2 only), whenever
    a layer has forward or backward hooks (so ``layer_shapes`` and any hooks still see every
    layer), with ``VAE_FUSED=0``, and for good once torch's private op is missing or fails
    (older torch, ARM builds, a changed signature: one ``RuntimeWarning`` says so).

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
                if dtype == torch.float32 or (dtype == torch.bfloat16 and _onednn_has_bf16()):
                    # Casts outside the Function, so autograd routes the gradients back to the
                    # fp32 parameters exactly as autocast does for a plain convolution.
                    try:
                        x = _ConvLeakyReLU.apply(x.to(dtype), layer.weight.to(dtype),
                                                 layer.bias.to(dtype), layer,
                                                 float(layers[i + 1].negative_slope))
                    except Exception as err:  # a missing, changed or refusing private op
                        _fusion_failed(err)
                    else:
                        i += 2
                        continue
            x = layer(x)
            i += 1
        return x
