"""Gated DeltaNet: linear attention with the gated delta rule, a short convolution and a fixed-size state (notebook 13).

The state of one head is a matrix S of shape (d_v, d_k) that maps a key to a value. Per token, with a decay
alpha = exp(g) in (0, 1] and a write strength beta in (0, 1):

    S <- alpha * S (I - beta k k^T) + beta v k^T        output  o = S q

(the gated delta rule of Yang, Kautz and Hatamizadeh, "Gated Delta Networks", 2024).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .rms_norm import RMSNorm

__all__ = [
    "l2_normalize",
    "gated_delta_rule_recurrent",
    "gated_delta_rule_chunked",
    "ShortConvolution",
    "GatedRMSNorm",
    "DeltaNetState",
    "GatedDeltaNet",
]


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each vector (the last dimension) to length 1: x / sqrt(sum(x^2) + eps)."""
    return x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps)


def gated_delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated delta rule one token at a time: S <- exp(g) S (I - beta k k^T) + beta v k^T, output S q.

    q, k: (B, H, T, d_k); v: (B, H, T, d_v); g (log of the decay, <= 0) and beta: (B, H, T);
    state: (B, H, d_v, d_k) or None (all zeros). Returns the outputs (B, H, T, d_v) and the last state.
    """
    b, h, t, d_k = k.shape
    if state is None:
        state = k.new_zeros(b, h, v.shape[-1], d_k)
    outputs = []
    for i in range(t):
        k_i, v_i = k[:, :, i, :, None], v[:, :, i, :, None]  # (B, H, d_k, 1), (B, H, d_v, 1): column vectors
        state = state * g[:, :, i, None, None].exp()  # forget a little of everything: alpha * S
        recalled = state @ k_i  # (B, H, d_v, 1): the value the state already gives for this key
        delta = beta[:, :, i, None, None] * (v_i - recalled)  # write only what is missing, a beta share of it
        state = state + delta @ k_i.transpose(-1, -2)  # a rank-1 correction (B, H, d_v, d_k)
        outputs.append(state @ q[:, :, i, :, None])  # read with the query: (B, H, d_v, 1)
    return torch.cat(outputs, dim=-1).transpose(-1, -2), state  # (B, H, T, d_v)


def gated_delta_rule_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same rule computed chunk_size tokens at a time: matrix products inside a chunk, the state between chunks.

    Same arguments and results as gated_delta_rule_recurrent. Inside a chunk that starts from state S0, write
    Gamma_i for the product of the decays from the chunk's start to token i and u_i = beta_i (v_i - alpha_i
    S_{i-1} k_i) for what token i writes. Then S_i = Gamma_i S0 + sum_{j <= i} (Gamma_i / Gamma_j) u_j k_j^T, and
    the u_i solve one unit lower-triangular system (I + A) U = beta (V - Gamma K S0^T) with
    A[i, j] = beta_i (Gamma_i / Gamma_j) k_i . k_j for j < i (the WY / UT form of the delta rule).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    b, h, t, d_k = k.shape
    if state is None:
        state = k.new_zeros(b, h, v.shape[-1], d_k)
    outputs = []
    for start in range(0, t, chunk_size):
        end = min(start + chunk_size, t)
        n = end - start
        q_c, k_c, v_c = q[:, :, start:end], k[:, :, start:end], v[:, :, start:end]  # (B, H, n, d)
        beta_c = beta[:, :, start:end, None]  # (B, H, n, 1)
        log_gamma = g[:, :, start:end].cumsum(dim=-1)  # (B, H, n): log Gamma_i
        gamma = log_gamma.exp()[..., None]  # (B, H, n, 1), in (0, 1]
        # decay from token j to token i: Gamma_i / Gamma_j for j <= i, 0 above the diagonal (masked before exp,
        # where the difference is positive and could overflow)
        causal = torch.ones(n, n, dtype=torch.bool, device=k.device).tril()
        decay = (log_gamma[..., :, None] - log_gamma[..., None, :]).masked_fill(~causal, float("-inf")).exp()
        a = ((beta_c * k_c) @ k_c.transpose(-1, -2) * decay).tril(-1)  # (B, H, n, n), strictly lower
        rhs = beta_c * (v_c - gamma * (k_c @ state.transpose(-1, -2)))  # (B, H, n, d_v)
        eye = torch.eye(n, dtype=a.dtype, device=a.device)
        u = torch.linalg.solve_triangular(eye + a, rhs, upper=False, unitriangular=True)  # (B, H, n, d_v)
        # o_i = S_i q_i = Gamma_i S0 q_i + sum_{j <= i} (Gamma_i / Gamma_j) (q_i . k_j) u_j
        scores = (q_c @ k_c.transpose(-1, -2)) * decay  # (B, H, n, n), causal
        outputs.append(gamma * (q_c @ state.transpose(-1, -2)) + scores @ u)
        # the state at the chunk's end: Gamma_n S0 + sum_j (Gamma_n / Gamma_j) u_j k_j^T
        to_end = (log_gamma[..., -1:] - log_gamma).exp()[..., None]  # (B, H, n, 1)
        state = gamma[:, :, -1:] * state + u.transpose(-1, -2) @ (to_end * k_c)
    return torch.cat(outputs, dim=2), state


class ShortConvolution(nn.Module):
    """Causal depthwise convolution over time (each channel its own kernel_size taps), followed by SiLU."""

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        self.kernel_size = kernel_size
        # (C, 1, K), the layout of nn.Conv1d(groups=C) and of the checkpoints; its default initialisation too
        bound = kernel_size**-0.5
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, T, C); past: (B, C, K - 1), the K - 1 inputs before x (None: zeros, nothing came before)
        x = x.transpose(1, 2)  # (B, C, T): channels first
        if past is None:
            past = x.new_zeros(x.shape[0], x.shape[1], self.kernel_size - 1)
        window = torch.cat((past.to(x.dtype), x), dim=-1)  # (B, C, K - 1 + T)
        # output t of channel c: the K inputs t - K + 1 .. t of channel c times its K weights, summed. Written as
        # a multiply and a sum (not conv1d, whose call costs far more than these few products when T = 1)
        taps = window.unfold(-1, self.kernel_size, 1)  # (B, C, T, K): the K inputs each output sees
        out = F.silu((taps * self.weight).sum(dim=-1))  # weight (C, 1, K) broadcasts over B and T: (B, C, T)
        # the new past: the last K - 1 inputs, what the next call needs (fixed size however long the text)
        return out.transpose(1, 2), window[:, :, window.shape[-1] - (self.kernel_size - 1) :]


class GatedRMSNorm(RMSNorm):
    """RMSNorm of each head's output, then multiplied feature by feature by SiLU(z), a gate from the layer's input."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # x, z: (..., d_v); the gate in float32, the result back in x's dtype
        return (super().forward(x) * F.silu(z.float())).to(x.dtype)


class DeltaNetState:
    """What one Gated DeltaNet layer carries from token to token: the convolution's past inputs and the state."""

    def __init__(self, conv: torch.Tensor, recurrent: torch.Tensor):
        self.conv = conv  # (B, conv channels, K - 1): the last inputs of the short convolution
        self.recurrent = recurrent  # (B, H_v, d_v, d_k): one matrix per value head
        self.length = 0  # positions seen so far (the tensors do not grow with it)

    @property
    def nbytes(self) -> int:
        """Bytes the two tensors hold: the same at every length."""
        return sum(t.numel() * t.element_size() for t in (self.conv, self.recurrent))

    def reset(self) -> None:
        """Forget everything: zero state, zero past inputs."""
        self.conv.zero_()
        self.recurrent.zero_()
        self.length = 0


class GatedDeltaNet(nn.Module):
    """Qwen3-Next's linear-attention layer: projections, short convolution, gated delta rule, gated RMSNorm."""

    def __init__(
        self,
        emb_dim: int,
        n_key_heads: int,
        n_value_heads: int,
        key_head_dim: int,
        value_head_dim: int,
        conv_kernel: int = 4,
        norm_eps: float = 1e-6,
        chunk_size: int = 64,
    ):
        super().__init__()
        if n_value_heads % n_key_heads != 0:
            raise ValueError(f"n_value_heads ({n_value_heads}) must be a multiple of n_key_heads ({n_key_heads})")
        self.n_key_heads, self.n_value_heads = n_key_heads, n_value_heads
        self.key_head_dim, self.value_head_dim = key_head_dim, value_head_dim
        self.chunk_size = chunk_size
        key_dim, value_dim = n_key_heads * key_head_dim, n_value_heads * value_head_dim
        self.split_sizes = [key_dim, key_dim, value_dim, value_dim, n_value_heads, n_value_heads]
        # one projection, rows in the order q | k | v | z (output gate) | b (beta) | a (decay step)
        self.in_proj = nn.Linear(emb_dim, sum(self.split_sizes), bias=False)
        self.conv = ShortConvolution(2 * key_dim + value_dim, conv_kernel)  # over q, k and v, not z, b, a
        # decay per value head: g = -exp(A_log) * softplus(a + dt_bias) <= 0, so alpha = exp(g) is in (0, 1]
        self.A_log = nn.Parameter(torch.empty(n_value_heads).uniform_(1.0, 16.0).log())
        self.dt_bias = nn.Parameter(torch.ones(n_value_heads))
        self.norm = GatedRMSNorm(value_head_dim, eps=norm_eps)  # shared by all heads
        self.out_proj = nn.Linear(value_dim, emb_dim, bias=False)

    def forward(self, x: torch.Tensor, state: DeltaNetState | None = None) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, C)
        q, k, v, z, beta_logits, a = self.in_proj(x).split(self.split_sizes, dim=-1)
        qkv, conv_past = self.conv(torch.cat((q, k, v), dim=-1), None if state is None else state.conv)
        q, k, v = qkv.split(self.split_sizes[:3], dim=-1)
        h_k, h_v, d_k, d_v = self.n_key_heads, self.n_value_heads, self.key_head_dim, self.value_head_dim
        # the rule runs in float32, heads first; q and k of unit length, q scaled by 1/sqrt(d_k)
        q = l2_normalize(q.view(b, t, h_k, d_k).float()) * d_k**-0.5
        k = l2_normalize(k.view(b, t, h_k, d_k).float())
        # H_v / H_k value heads share each key head: value head j reads key head j // (H_v / H_k)
        q = q.repeat_interleave(h_v // h_k, dim=2).transpose(1, 2)  # (B, H_v, T, d_k)
        k = k.repeat_interleave(h_v // h_k, dim=2).transpose(1, 2)  # (B, H_v, T, d_k)
        v = v.view(b, t, h_v, d_v).float().transpose(1, 2)  # (B, H_v, T, d_v)
        beta = beta_logits.sigmoid().float().transpose(1, 2)  # (B, H_v, T), in (0, 1)
        g = (-self.A_log.float().exp() * F.softplus(a.float() + self.dt_bias)).transpose(1, 2)  # (B, H_v, T)

        initial = None if state is None else state.recurrent.float()
        if t == 1:  # decoding: one step of the recurrence
            out, last = gated_delta_rule_recurrent(q, k, v, g, beta, initial)
        else:  # a prompt (or a piece of one): the chunked form
            out, last = gated_delta_rule_chunked(q, k, v, g, beta, initial, self.chunk_size)
        if state is not None:  # carry the fixed-size state, not the past tokens
            state.recurrent.copy_(last)
            state.conv.copy_(conv_past)
            state.length += t

        out = out.transpose(1, 2).to(x.dtype)  # (B, T, H_v, d_v)
        out = self.norm(out, z.view(b, t, h_v, d_v))  # per head: RMSNorm, times SiLU(z)
        return self.out_proj(out.reshape(b, t, h_v * d_v))  # (B, T, C)
