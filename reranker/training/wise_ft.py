"""WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022): a fine-tuned model's weights
interpolated with those it started from, theta = (1 - alpha) * start + alpha * fine-tuned, which keeps more of what
the start knew off-domain. Written by hand: neither sentence-transformers nor transformers interpolates weights."""

from __future__ import annotations

import torch
from sentence_transformers.cross_encoder import CrossEncoder


def interpolate_with_start(trained: CrossEncoder, start: CrossEncoder, alpha: float) -> CrossEncoder:
    """`trained` with every weight the start has set to (1 - alpha) * start + alpha * trained, in place; the score
    head stays the trained one (a new head's start is random). alpha = 1 leaves `trained` as it is.

    Example: ``interpolate_with_start(trained, load_cross_encoder(params.train, 256), alpha=0.7)``.
    """
    start_state = start.model.state_dict()
    with torch.no_grad():
        for name, value in trained.model.state_dict().items():
            if name.startswith("classifier") or name not in start_state or not value.is_floating_point():
                continue
            value.copy_((1 - alpha) * start_state[name].to(value.dtype) + alpha * value)
    return trained
