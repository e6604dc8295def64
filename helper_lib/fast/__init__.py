"""The speed machinery: what makes the lecture's model train fast on a CPU, with the same results.

Nothing here changes what a model computes, only how fast:

* :mod:`helper_lib.fast.layers`: drop-in layers the models are built from (each convolution
  fused with its LeakyReLU; transposed convolutions that add their bias outside oneDNN).
* :mod:`helper_lib.fast.precision`: bf16 autocast where the CPU or GPU computes it natively,
  fp32 elsewhere, and channels_last (:func:`~helper_lib.fast.precision.resolve_precision`).
* :mod:`helper_lib.fast.allocator`: glibc's allocator tuned when training starts.

The measurements behind each choice are in ``benchmarks/README.md``.
"""
