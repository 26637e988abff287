"""Mixture of experts: routers, SwiGLU experts, shared experts and load balance (notebook 15).

The feed-forward network of a block becomes n_experts SwiGLU networks and a router that sends each token to
top_k of them. Qwen3-MoE routes with a softmax, DeepSeek-V3 with sigmoid scores, a balancing bias and groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .swiglu import SwiGLUFeedForward

__all__ = [
    "check_routing_sizes",
    "softmax_topk_routing",
    "deepseek_routing",
    "SwiGLUExperts",
    "MoEFeedForward",
    "MoESettings",
    "load_balancing_loss",
    "expert_load",
    "update_routing_bias_",
    "stack_hf_experts",
]


def check_routing_sizes(n_experts: int, top_k: int, n_group: int = 1, topk_group: int = 1) -> None:
    """Raise a one-line ValueError unless top_k experts can be chosen from topk_group of n_group groups."""
    for name, value in (("n_experts", n_experts), ("top_k", top_k), ("n_group", n_group), ("topk_group", topk_group)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if top_k > n_experts:
        raise ValueError(f"top_k ({top_k}) must be at most the number of experts ({n_experts})")
    if n_experts % n_group != 0:
        raise ValueError(f"n_group ({n_group}) must divide the number of experts ({n_experts}) into equal groups")
    if topk_group > n_group:
        raise ValueError(f"topk_group ({topk_group}) must be at most n_group ({n_group}): it counts groups kept")
    per_group = n_experts // n_group
    if n_group > 1 and per_group < 2:
        raise ValueError(
            f"each of the n_group={n_group} groups needs at least 2 experts (a group's score sums its best two), "
            f"got {per_group}; use fewer groups"
        )
    if top_k > topk_group * per_group:
        raise ValueError(
            f"top_k ({top_k}) is more than the {topk_group * per_group} experts of the topk_group={topk_group} "
            f"groups kept (of {per_group} experts each); raise topk_group or lower top_k"
        )


def _check_logits(router_logits: torch.Tensor) -> int:
    if not isinstance(router_logits, torch.Tensor) or router_logits.dim() < 1 or not router_logits.is_floating_point():
        raise TypeError("router_logits must be a float tensor of shape (..., n_experts)")
    return router_logits.shape[-1]


def softmax_topk_routing(
    router_logits: torch.Tensor, top_k: int, norm_topk_prob: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the experts, keep the top_k; their weights renormalised to sum to 1 if norm_topk_prob (Qwen3)."""
    check_routing_sizes(_check_logits(router_logits), top_k)
    probs = torch.softmax(router_logits.float(), dim=-1)  # (N, E), in float32 whatever the model's dtype
    weights, experts = probs.topk(top_k, dim=-1)  # (N, k) each, best first
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)  # the k chosen weights sum to 1
    return weights.to(router_logits.dtype), experts


def deepseek_routing(
    router_logits: torch.Tensor,
    bias: torch.Tensor | None,
    top_k: int,
    n_group: int = 1,
    topk_group: int = 1,
    routed_scaling_factor: float = 1.0,
    norm_topk_prob: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3: sigmoid scores; score + bias picks topk_group groups, then top_k experts; weights from scores."""
    n_experts = _check_logits(router_logits)
    check_routing_sizes(n_experts, top_k, n_group, topk_group)
    if bias is not None and tuple(bias.shape) != (n_experts,):
        raise ValueError(f"bias must have shape ({n_experts},), one per expert, got {tuple(bias.shape)}")
    scores = torch.sigmoid(router_logits.float())  # (N, E): each expert judged on its own, no competition
    choice = scores if bias is None else scores + bias.float()  # the bias moves the choice, not the weights
    if n_group > 1:
        # a group's score is the sum of its best two experts; experts outside the topk_group best groups drop out
        grouped = choice.unflatten(-1, (n_group, n_experts // n_group))  # (N, G, E / G)
        group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)  # (N, G)
        kept = group_scores.topk(topk_group, dim=-1).indices  # (N, topk_group)
        group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(-1, kept, True)  # (N, G)
        expert_mask = group_mask.unsqueeze(-1).expand_as(grouped).flatten(-2)  # (N, E)
        choice = choice.masked_fill(~expert_mask, float("-inf"))
    experts = choice.topk(top_k, dim=-1).indices  # (N, k)
    weights = scores.gather(-1, experts)  # (N, k): the scores without the bias
    if norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)  # as DeepSeek-V3: no division by zero
    return weights * routed_scaling_factor, experts  # float32, as DeepSeek-V3's router keeps them


class SwiGLUExperts(nn.Module):
    """n_experts SwiGLU networks stored as stacked weights: gate and up (E, hidden, C), down (E, C, hidden)."""

    def __init__(self, n_experts: int, emb_dim: int, hidden_dim: int):
        super().__init__()
        for name, value in (("n_experts", n_experts), ("emb_dim", emb_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"SwiGLUExperts: {name} must be a positive int, got {value!r}")
        self.n_experts = n_experts
        # expert e's nn.Linear weights, (out_features, in_features) as in a checkpoint: gate[e] is (hidden, C)
        self.gate = nn.Parameter(torch.empty(n_experts, hidden_dim, emb_dim))
        self.up = nn.Parameter(torch.empty(n_experts, hidden_dim, emb_dim))
        self.down = nn.Parameter(torch.empty(n_experts, emb_dim, hidden_dim))
        for weight in (self.gate, self.up, self.down):
            bound = weight.shape[-1] ** -0.5  # nn.Linear's default range: 1 / sqrt(in_features)
            nn.init.uniform_(weight, -bound, bound)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e's SwiGLU network on tokens x (n, C) -> (n, C)."""
        return F.linear(F.silu(F.linear(x, self.gate[e])) * F.linear(x, self.up[e]), self.down[e])

    def _check(self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> None:
        if x.dim() != 2 or weights.dim() != 2 or experts.shape != weights.shape or experts.shape[0] != x.shape[0]:
            raise ValueError(
                "expected x (N, C), weights (N, k) and experts (N, k) for the same N tokens, got "
                f"{tuple(x.shape)}, {tuple(weights.shape)}, {tuple(experts.shape)}; flatten (B, T) into N first"
            )
        if experts.numel() and not 0 <= int(experts.min()) <= int(experts.max()) < self.n_experts:
            top = self.n_experts - 1
            raise ValueError(f"expert indices must lie in [0, {top}], got {experts.min()}..{experts.max()}")

    def forward_naive(self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """One token and one chosen expert at a time: out[n] = sum_j weights[n, j] * expert_{experts[n, j]}(x[n])."""
        self._check(x, weights, experts)
        rows = []
        for n in range(x.shape[0]):  # N tokens
            row = torch.zeros_like(x[n])  # (C,)
            for j in range(experts.shape[1]):  # its k experts
                row = row + weights[n, j] * self.expert(int(experts[n, j]), x[n : n + 1])[0]
            rows.append(row.to(x.dtype))
        return torch.stack(rows) if rows else x.new_zeros(x.shape)  # (N, C)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """Grouped: sort the N * k (token, expert) pairs by expert, run each chosen expert once on its tokens."""
        self._check(x, weights, experts)
        k = experts.shape[1]
        flat = experts.reshape(-1)  # (N * k,): pair p is token p // k and its (p % k)-th expert
        order = flat.argsort(stable=True)  # pairs of expert 0 first, then expert 1, ...
        tokens = order // k  # (N * k,): the token of each sorted pair
        used, counts = flat.unique(return_counts=True)  # only the experts some token chose, ascending
        x_sorted = x.index_select(0, tokens)  # (N * k, C): each token copied once per chosen expert
        outputs = []
        start = 0
        for e, count in zip(used.tolist(), counts.tolist(), strict=True):  # at most N * k experts: decoding runs only k
            outputs.append(self.expert(e, x_sorted[start : start + count]))  # (count, C)
            start += count
        if not outputs:
            return x.new_zeros(x.shape)
        y_sorted = torch.cat(outputs) * weights.reshape(-1)[order].unsqueeze(-1)  # (N * k, C), weighted
        out = torch.zeros(x.shape, dtype=y_sorted.dtype, device=x.device)
        return out.index_add_(0, tokens, y_sorted).to(x.dtype)  # each token sums its k weighted outputs


class MoEFeedForward(nn.Module):
    """A router (Linear to n_experts logits), SwiGLU experts, and optionally a shared expert (with a sigmoid gate)."""

    def __init__(
        self,
        emb_dim: int,
        hidden_dim: int,
        n_experts: int,
        top_k: int,
        *,
        norm_topk_prob: bool = True,
        routing: str = "softmax",
        n_group: int = 1,
        topk_group: int = 1,
        routed_scaling_factor: float = 1.0,
        shared_hidden_dim: int = 0,
        shared_expert_gate: bool = False,
    ):
        super().__init__()
        if routing not in ("softmax", "deepseek"):
            raise ValueError(f"routing must be 'softmax' (Qwen3-MoE, Qwen3-Next) or 'deepseek', got {routing!r}")
        if routing == "softmax" and (n_group, topk_group) != (1, 1):
            raise ValueError("n_group and topk_group (group-limited routing) need routing='deepseek'")
        check_routing_sizes(n_experts, top_k, n_group, topk_group)
        if isinstance(shared_hidden_dim, bool) or not isinstance(shared_hidden_dim, int) or shared_hidden_dim < 0:
            raise ValueError(f"shared_hidden_dim must be an int >= 0 (0: no shared expert), got {shared_hidden_dim!r}")
        if shared_expert_gate and not shared_hidden_dim:
            raise ValueError("shared_expert_gate=True needs a shared expert: set shared_hidden_dim > 0")
        self.n_experts, self.top_k, self.norm_topk_prob, self.routing = n_experts, top_k, norm_topk_prob, routing
        self.n_group, self.topk_group, self.routed_scaling_factor = n_group, topk_group, routed_scaling_factor
        self.router = nn.Linear(emb_dim, n_experts, bias=False)  # (N, C) -> (N, E) logits
        if routing == "deepseek":
            # moved by update_routing_bias_, never by gradients: a buffer, saved with the model
            self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))
        self.experts = SwiGLUExperts(n_experts, emb_dim, hidden_dim)
        self.shared_expert = SwiGLUFeedForward(emb_dim, shared_hidden_dim) if shared_hidden_dim else None
        self.shared_expert_gate = nn.Linear(emb_dim, 1, bias=False) if shared_expert_gate else None
        self.last_router_logits: torch.Tensor | None = None  # (N, E) of the last forward, for the balance loss
        self.last_experts: torch.Tensor | None = None  # (N, k) of the last forward, for expert_load

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(router_logits (N, E), weights (N, k), experts (N, k)) for tokens x (N, C)."""
        if self.routing == "softmax":
            logits = self.router(x)  # (N, E)
            return logits, *softmax_topk_routing(logits, self.top_k, self.norm_topk_prob)
        logits = F.linear(x.float(), self.router.weight.float())  # DeepSeek-V3 scores in float32
        weights, experts = deepseek_routing(
            logits,
            self.e_score_correction_bias,
            self.top_k,
            self.n_group,
            self.topk_group,
            self.routed_scaling_factor,
            self.norm_topk_prob,
        )
        return logits, weights, experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape  # (B, T, C) or (N, C)
        flat = x.reshape(-1, shape[-1])  # (N, C): routing is per token
        logits, weights, experts = self.route(flat)
        self.last_router_logits, self.last_experts = logits, experts
        out = self.experts(flat, weights, experts)  # (N, C)
        if self.shared_expert is not None:  # every token also goes through the shared expert
            shared = self.shared_expert(flat)
            if self.shared_expert_gate is not None:  # Qwen3-Next: a per-token sigmoid gate on it
                shared = torch.sigmoid(self.shared_expert_gate(flat)) * shared
            out = out + shared
        return out.reshape(shape)


@dataclass(frozen=True)
class MoESettings:
    """A model's mixture-of-experts layers: which layers, how many experts of what width, how tokens are routed."""

    layers: tuple[int, ...]  # indices of the MoE layers; the other layers keep a dense SwiGLU network
    n_experts: int
    top_k: int
    hidden_dim: int  # width of each expert's SwiGLU network (config.json: moe_intermediate_size)
    norm_topk_prob: bool = True
    routing: str = "softmax"  # or "deepseek"
    n_group: int = 1
    topk_group: int = 1
    routed_scaling_factor: float = 1.0
    shared_hidden_dim: int = 0  # 0: no shared expert
    shared_expert_gate: bool = False

    def __post_init__(self) -> None:
        layers = self.layers
        if not isinstance(layers, tuple) or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers):
            raise ValueError(f"MoESettings.layers must be a tuple of layer indices >= 0, got {layers!r}")
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"MoESettings.layers must be sorted and without repeats, got {layers!r}")
        with torch.device("meta"):  # the layer's own checks, on a throwaway layer that takes no memory
            self.feed_forward(1)

    def feed_forward(self, emb_dim: int) -> MoEFeedForward:
        """A MoEFeedForward for hidden states of width emb_dim, with these settings."""
        return MoEFeedForward(
            emb_dim,
            self.hidden_dim,
            self.n_experts,
            self.top_k,
            norm_topk_prob=self.norm_topk_prob,
            routing=self.routing,
            n_group=self.n_group,
            topk_group=self.topk_group,
            routed_scaling_factor=self.routed_scaling_factor,
            shared_hidden_dim=self.shared_hidden_dim,
            shared_expert_gate=self.shared_expert_gate,
        )


def load_balancing_loss(router_logits: torch.Tensor | Sequence[torch.Tensor], top_k: int) -> torch.Tensor:
    """Switch-style auxiliary loss n_experts * sum_e f_e * P_e over all given layers' router logits (N, E).

    f_e: the fraction of tokens whose softmax top_k includes expert e (summing to top_k over e); P_e: the mean
    softmax probability of expert e. Perfect balance gives top_k; all tokens on the same experts give more.
    """
    layers = [router_logits] if isinstance(router_logits, torch.Tensor) else list(router_logits)
    if not layers:
        raise ValueError("load_balancing_loss needs the router logits of at least one layer")
    n_experts = _check_logits(layers[0])
    check_routing_sizes(n_experts, top_k)
    probs = torch.cat([torch.softmax(logits.reshape(-1, n_experts).float(), dim=-1) for logits in layers])  # (L*N, E)
    chosen = probs.topk(top_k, dim=-1).indices  # (L*N, k)
    fraction = expert_load(chosen, n_experts).float() / probs.shape[0]  # (E,): f_e, no gradient through counts
    return n_experts * (fraction * probs.mean(dim=0)).sum()  # the gradient flows through P_e


def expert_load(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Tokens sent to each expert: an int64 tensor (n_experts,) counting the entries of experts (..., k)."""
    if isinstance(n_experts, bool) or not isinstance(n_experts, int) or n_experts < 1:
        raise ValueError(f"n_experts must be a positive int, got {n_experts!r}")
    flat = experts.reshape(-1)
    if flat.numel() and not 0 <= int(flat.min()) <= int(flat.max()) < n_experts:
        raise ValueError(f"expert indices must lie in [0, {n_experts - 1}], got {flat.min()}..{flat.max()}")
    return torch.bincount(flat, minlength=n_experts)


@torch.no_grad()
def update_routing_bias_(bias: torch.Tensor, load: torch.Tensor, rate: float) -> torch.Tensor:
    """DeepSeek-V3's loss-free balancing, in place: bias += rate for experts below the mean load, -= rate above."""
    if tuple(load.shape) != tuple(bias.shape):
        raise ValueError(f"load {tuple(load.shape)} and bias {tuple(bias.shape)} must both have one entry per expert")
    load = load.float()
    return bias.add_(rate * torch.sign(load.mean() - load).to(bias.dtype))  # at the mean: unchanged


def stack_hf_experts(state_dict: dict, prefix: str, n_experts: int) -> dict[str, torch.Tensor]:
    """Pop prefix.{e}.{gate,up,down}_proj.weight (or transformers' fused prefix.gate_up_proj) and stack them.

    Returns {"gate": (E, hidden, C), "up": (E, hidden, C), "down": (E, C, hidden)}, SwiGLUExperts' names.
    """
    fused = prefix + ".gate_up_proj"
    if fused in state_dict:  # transformers 5 in memory: gate_up_proj (E, 2 * hidden, C), down_proj (E, C, hidden)
        down = state_dict.pop(prefix + ".down_proj", None)
        if down is None:
            raise ValueError(f"checkpoint has {fused!r} but not {prefix + '.down_proj'!r}; download it again")
        gate, up = state_dict.pop(fused).chunk(2, dim=1)
        return {"gate": gate, "up": up, "down": down}
    out = {}
    for ours in ("gate", "up", "down"):
        names = [f"{prefix}.{e}.{ours}_proj.weight" for e in range(n_experts)]
        absent = [name for name in names if name not in state_dict]
        if absent:
            raise ValueError(
                f"checkpoint is missing {absent[0]!r} ({len(absent)} expert tensors missing); are all shards there, "
                "and does config.json's number of experts belong to these weights?"
            )
        tensors = [state_dict.pop(name) for name in names]
        for name, tensor in zip(names, tensors, strict=True):
            if tensor.shape != tensors[0].shape:
                raise ValueError(
                    f"shape mismatch for {name!r}: {tuple(tensor.shape)}, expert 0's is {tuple(tensors[0].shape)}; "
                    "every expert of a layer has the same shape: the checkpoint is damaged, download it again"
                )
        out[ours] = torch.stack(tensors)
    return out
