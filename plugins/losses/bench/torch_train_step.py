"""PyTorch eager baseline for `ecomla bench train`: one distillation step on the same shapes.

Teacher: a Llama (GQA, rotate-half RoPE, RMSNorm, SwiGLU) run under no_grad. Student: the same
Llama with every attention replaced by X-EcoMLA's MLA (q_a/q_b, kv_a = [c_kv | one shared k_pe],
kv_b per head = [k_nope, v], RoPE on the pe parts only, causal softmax, out_proj), randomly
initialised. Loss: forward KL(teacher || student) over the vocabulary, mean over positions.
Optimizer: torch.optim.AdamW. Written plainly, as a PyTorch 1.13 user would (eager, no compile,
no fused attention: F.scaled_dot_product_attention does not exist before 2.0).

Run with the interpreter that has torch (Debian's /usr/bin/python3). Prints one JSON object.
Thread count: --threads, applied to torch and (via the environment the CLI sets) to OpenBLAS.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(dim, seq, theta):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(torch.arange(seq).float(), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()  # (T, dim)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


def apply_rope(x, cos, sin):
    # x (B, H, T, dim)
    return x * cos + rotate_half(x) * sin


def causal_attention(q, k, v, scale, mask):
    # q, k (B, H, T, dqk); v (B, H, T, dv)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class GqaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, h, hk, dh = c["hidden"], c["heads"], c["kvHeads"], c["headDim"]
        self.h, self.hk, self.dh = h, hk, dh
        self.q_proj = nn.Linear(d, h * dh, bias=False)
        self.k_proj = nn.Linear(d, hk * dh, bias=False)
        self.v_proj = nn.Linear(d, hk * dh, bias=False)
        self.o_proj = nn.Linear(h * dh, d, bias=False)

    def forward(self, x, rope, mask):
        b, t, _ = x.shape
        cos, sin = rope["full"]
        q = apply_rope(self.q_proj(x).view(b, t, self.h, self.dh).transpose(1, 2), cos, sin)
        k = apply_rope(self.k_proj(x).view(b, t, self.hk, self.dh).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(b, t, self.hk, self.dh).transpose(1, 2)
        group = self.h // self.hk
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        out = causal_attention(q, k, v, self.dh ** -0.5, mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.h * self.dh))


class MlaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, h = c["hidden"], c["heads"]
        self.h, self.r_kv = h, c["kvLoraRank"]
        self.d_nope, self.d_rope, self.d_v = c["qkNopeHeadDim"], c["qkRopeHeadDim"], c["vHeadDim"]
        self.q_a_proj = nn.Linear(d, c["qLoraRank"], bias=False)
        self.q_b_proj = nn.Linear(c["qLoraRank"], h * (self.d_nope + self.d_rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(d, self.r_kv + self.d_rope, bias=False)
        self.kv_b_proj = nn.Linear(self.r_kv, h * (self.d_nope + self.d_v), bias=False)
        self.out_proj = nn.Linear(h * self.d_v, d, bias=False)

    def forward(self, x, rope, mask):
        b, t, _ = x.shape
        cos, sin = rope["pe"]
        q = self.q_b_proj(self.q_a_proj(x)).view(b, t, self.h, self.d_nope + self.d_rope).transpose(1, 2)
        q_nope, q_pe = q.split([self.d_nope, self.d_rope], dim=-1)
        c_kv, k_pe = self.kv_a_proj_with_mqa(x).split([self.r_kv, self.d_rope], dim=-1)
        k_pe = apply_rope(k_pe.view(b, t, 1, self.d_rope).transpose(1, 2), cos, sin)  # (B, 1, T, d_rope): one for all heads
        kv = self.kv_b_proj(c_kv).view(b, t, self.h, self.d_nope + self.d_v).transpose(1, 2)
        k_nope, v = kv.split([self.d_nope, self.d_v], dim=-1)
        q = torch.cat([q_nope, apply_rope(q_pe, cos, sin)], dim=-1)
        k = torch.cat([k_nope, k_pe.expand(b, self.h, t, self.d_rope)], dim=-1)
        out = causal_attention(q, k, v, (self.d_nope + self.d_rope) ** -0.5, mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.h * self.d_v))


class Block(nn.Module):
    def __init__(self, c, mla):
        super().__init__()
        d = c["hidden"]
        self.input_layernorm = RMSNorm(d, 1e-5)
        self.attn = MlaAttention(c) if mla else GqaAttention(c)
        self.post_attention_layernorm = RMSNorm(d, 1e-5)
        self.gate_proj = nn.Linear(d, c["intermediate"], bias=False)
        self.up_proj = nn.Linear(d, c["intermediate"], bias=False)
        self.down_proj = nn.Linear(c["intermediate"], d, bias=False)

    def forward(self, x, rope, mask):
        x = x + self.attn(self.input_layernorm(x), rope, mask)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class CausalLM(nn.Module):
    def __init__(self, c, mla):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList([Block(c, mla) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["hidden"], 1e-5)
        self.lm_head = nn.Linear(c["hidden"], c["vocab"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, rope, mask):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, rope, mask)
        return self.lm_head(self.norm(h))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--config", type=str, required=True, help="JSON: the model config ecomla times")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = json.loads(args.config)
    b, t, v = c["batch"], c["seqLen"], c["vocab"]
    teacher = CausalLM(c, mla=False).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = CausalLM(c, mla=True).train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    rope = {"full": rope_tables(c["headDim"], t, c["ropeTheta"]), "pe": rope_tables(c["qkRopeHeadDim"], t, c["ropeTheta"])}
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    ids = torch.randint(0, v, (b, t))

    phases = {"teacherForward": [], "studentForward": [], "loss": [], "backward": [], "optimizer": [], "step": []}

    def step(record):
        t0 = time.perf_counter()
        with torch.no_grad():
            teacher_logits = teacher(ids, rope, mask).view(b * t, v)
        t1 = time.perf_counter()
        student_logits = student(ids, rope, mask).view(b * t, v)
        t2 = time.perf_counter()
        loss = F.kl_div(F.log_softmax(student_logits, dim=-1), F.log_softmax(teacher_logits, dim=-1), log_target=True, reduction="sum") / (b * t)
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        if record:
            for name, ms in zip(phases, [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0]):
                phases[name].append(ms * 1e3)
        return loss.item()

    for _ in range(args.warmup):
        step(False)
    losses = [step(True) for _ in range(args.repeats)]
    med = {k: statistics.median(vs) for k, vs in phases.items()}
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "stepMs": med["step"],
        "tokensPerSecond": b * t / (med["step"] / 1e3),
        "phasesMs": {k: vs for k, vs in med.items() if k != "step"},
        "lastLoss": losses[-1],
        "isFinite": all(math.isfinite(x) for x in losses),
    }))


if __name__ == "__main__":
    main()
