"""The loss named in params, built with its arguments converted to what its constructor asks for."""

from __future__ import annotations

import inspect

import torch
from sentence_transformers.cross_encoder import CrossEncoder, losses

from reranker.training.cross_encoder import import_object


def build_loss(model: CrossEncoder, name: str, loss_args: dict):
    """The loss class `name` with `loss_args` converted to its annotations (both checked by the check stage):
    numbers to tensors (pos_weight), names to instances (activation_fn, weighting_scheme, lambda_weight: a class of
    the losses module or a dotted path).

    Example: ``build_loss(model, "LambdaLoss", {"weighting_scheme": "NDCGLoss2PPScheme"})``.
    """
    loss_class = getattr(losses, name)
    parameters = inspect.signature(loss_class).parameters
    kwargs = {}
    for key, value in loss_args.items():
        annotation = str(parameters[key].annotation)
        if "Tensor" in annotation and isinstance(value, (int, float)):
            value = torch.tensor(value)
        elif isinstance(value, str) and "str" not in annotation and "Literal" not in annotation:
            target = getattr(losses, value, None) or import_object(value)
            value = target() if inspect.isclass(target) else target
        kwargs[key] = value
    return loss_class(model, **kwargs)
