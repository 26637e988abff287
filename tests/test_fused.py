"""use_fused_kernels: the same model, the same outputs, shared parameters."""

import copy

import torch
from helpers import TINY, tiny_model

from gpt_helpers import generate
from gpt_helpers.feed_forward import GELU
from gpt_helpers.fused import FusedGELU, FusedLayerNorm, use_fused_kernels
from gpt_helpers.normalization import LayerNorm


def test_fused_model_matches_taught_model():
    taught = tiny_model(TINY.with_(tie_weights=True))
    with torch.no_grad():  # non-trivial scale/shift so the LayerNorm parameters matter
        for m in taught.modules():
            if isinstance(m, LayerNorm):
                m.scale.add_(0.3 * torch.randn_like(m.scale))
                m.shift.add_(0.3 * torch.randn_like(m.shift))
    fused = use_fused_kernels(copy.deepcopy(taught))
    kinds = [type(m) for m in fused.modules()]
    assert LayerNorm not in kinds and GELU not in kinds
    assert kinds.count(FusedLayerNorm) == 2 * TINY.n_layers + 1 and kinds.count(FusedGELU) == TINY.n_layers
    ids = torch.randint(0, TINY.vocab_size, (2, TINY.context_length))
    with torch.no_grad():
        torch.testing.assert_close(fused(ids), taught(ids), atol=1e-5, rtol=1e-5)
    assert torch.equal(generate(fused, ids[:, :3], 20), generate(taught, ids[:, :3], 20))
    assert fused.state_dict().keys() == taught.state_dict().keys()
    assert fused.out_head.weight is fused.tok_emb.weight


def test_parameters_are_shared_not_copied():
    model = tiny_model()
    scale = model.trf_blocks[0].norm1.scale
    use_fused_kernels(model)
    assert model.trf_blocks[0].norm1.scale is scale
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_model().parameters())
