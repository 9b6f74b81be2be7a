"""Dynamic int8 quantisation of a serving program's linear layers (``recbole-dien export --quantize int8``).

* ``torch.export`` programs: :func:`quantize_called_linear_layers` swaps each linear layer the model
  calls for :class:`Int8Linear` - int8 weights (one scale per output), the input quantised per row
  at run time, an int8 x int8 -> int32 product (``torch._int_mm``) rescaled to float. torch's
  own ``quantize_dynamic`` modules cannot be traced by ``torch.export``; :func:`quantize_eager`
  uses them for a model run eagerly (benchmarks/serving.py's ``eager-int8``).
* ONNX: :func:`quantize_onnx`, ONNX Runtime's ``quantize_dynamic`` on the MatMul / Gemm nodes
  (per output channel).

Layers whose weights a model reads directly (the activation unit's first layer, split into its
query, key and product parts) are never called, so they stay float.
"""
import copy
import warnings

import torch
import torch.nn as nn

from recbole_dien.utils.errors import RecBoleDienError, require_extra

INT8_MAX = 127


def quantize_rows(x):
    """Symmetric int8 of each row of ``x`` [M, K] -> (int8 [M, K], scales [M, 1])."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / INT8_MAX
    return torch.round(x / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8), scale


class Int8Linear(nn.Module):
    """A dynamically quantised ``nn.Linear``: y = (q(x) W_q^T) s_x s_W + b."""

    def __init__(self, linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight, scale = quantize_rows(linear.weight.detach())                  # [out, in], [out, 1]
        self.register_buffer("weight_int8", weight.t().contiguous())           # [in, out]
        self.register_buffer("weight_scale", scale.squeeze(1))                 # [out]
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x):
        shape = x.shape[:-1]
        values, scale = quantize_rows(x.reshape(-1, self.in_features))
        y = torch._int_mm(values, self.weight_int8).float() * scale * self.weight_scale
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape, self.out_features)


def called_linear_layers(module, inputs):
    """The names of the ``nn.Linear`` layers ``module(*inputs)`` calls."""
    called, hooks = set(), []
    for name, layer in module.named_modules():
        if type(layer) is nn.Linear:
            hooks.append(layer.register_forward_hook(lambda *_, name=name: called.add(name)))
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return called


def quantize_called_linear_layers(module, inputs):
    """A copy of ``module`` with every linear layer ``module(*inputs)`` calls (outside a Transformer
    layer, whose fused kernel reads the weights) as :class:`Int8Linear`; ``quantized_layers``
    names them."""
    quantized = copy.deepcopy(module)
    inside_transformer = {f"{name}.{child}" if name else child for name, layer in quantized.named_modules()
                          if isinstance(layer, nn.TransformerEncoderLayer)
                          for child, _ in layer.named_modules() if child}
    names = called_linear_layers(quantized, inputs) - inside_transformer
    for name in sorted(names):
        parent_name, _, child = name.rpartition(".")
        parent = quantized.get_submodule(parent_name) if parent_name else quantized
        setattr(parent, child, Int8Linear(getattr(parent, child)))
    quantized.quantized_layers = sorted(names)
    return quantized


def quantize_eager(module, inputs):
    """For eager use only (``torch.export`` cannot trace the result): a copy of ``module`` with the
    linear layers ``module(*inputs)`` calls (outside Transformer layers) replaced by torch's own
    dynamically quantised ones (``torch.ao.quantization.quantize_dynamic``, fbgemm's kernels)."""
    names = called_linear_layers(module, inputs)
    names -= {f"{name}.{child}" if name else child for name, layer in module.named_modules()
              if isinstance(layer, nn.TransformerEncoderLayer) for child, _ in layer.named_modules() if child}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch points eager quantisation users to torchao
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), names, dtype=torch.qint8)
    quantized.quantized_layers = sorted(names)
    return quantized


def quantize_onnx(source, target):
    """ONNX Runtime's dynamic int8 quantisation of the ONNX model ``source``, written to ``target``."""
    require_extra("onnxruntime", "--quantize int8 of an ONNX model", "serving")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    except Exception as error:  # onnxruntime raises many kinds; one line naming it
        raise RecBoleDienError(f"ONNX Runtime could not quantise the model: {type(error).__name__}: {error}") from None
