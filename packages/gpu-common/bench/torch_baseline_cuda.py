"""PyTorch eager baselines on the GPU for `ecomla bench kernels --backend cuda|rocm`, on the shapes the CLI times.

The same shapes and eager formulations as @ecomla/backend-cpu's bench/torch_baseline.py, on torch.device("cuda")
(ROCm builds of PyTorch also name their device "cuda"), fp32 with TF32 off, timed with torch.cuda.synchronize().
Prints one JSON object.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


DEV = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def median_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def gemm(m, n, k, repeats):
    a = torch.randn(m, k, device=DEV)
    b = torch.randn(k, n, device=DEV)
    c = torch.empty(m, n, device=DEV)
    return median_ms(lambda: torch.mm(a, b, out=c), repeats)


def attention(batch, seq, heads, kv_heads, dim, repeats):
    # Eager causal GQA attention as a PyTorch 1.13 model writes it: expand kv heads, matmul,
    # mask, softmax, matmul; forward + backward.
    q = torch.randn(batch, seq, heads, dim, requires_grad=True, device=DEV)
    k = torch.randn(batch, seq, kv_heads, dim, requires_grad=True, device=DEV)
    v = torch.randn(batch, seq, kv_heads, dim, requires_grad=True, device=DEV)
    d_out = torch.randn(batch, heads, seq, dim, device=DEV)
    mask = torch.ones(seq, seq, dtype=torch.bool, device=DEV).triu(1)
    group = heads // kv_heads
    scale = dim ** -0.5

    def step():
        qh = q.transpose(1, 2)
        kh = k.transpose(1, 2).repeat_interleave(group, dim=1)
        vh = v.transpose(1, 2).repeat_interleave(group, dim=1)
        scores = torch.matmul(qh, kh.transpose(-1, -2)) * scale
        scores = scores.masked_fill(mask, float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), vh)
        out.backward(d_out)
        q.grad = k.grad = v.grad = None

    return median_ms(step, repeats)


def kl(rows, vocab, repeats, temperature=1.0):
    student = torch.randn(rows, vocab, requires_grad=True, device=DEV)
    teacher = torch.randn(rows, vocab, device=DEV)

    def step():
        log_q = F.log_softmax(student / temperature, dim=-1)
        log_p = F.log_softmax(teacher / temperature, dim=-1)
        loss = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)
        loss.sum().backward()
        student.grad = None

    return median_ms(step, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gemm", type=str, default="512x1024x1024,2048x2048x2048,4096x512x2048")
    ap.add_argument("--attention", type=str, default="4,512,8,2,64")
    ap.add_argument("--kl", type=str, default="2048,32000")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.gemm.split(",") if s]
    b, t, h, hk, d = (int(x) for x in args.attention.split(","))
    rows, vocab = (int(x) for x in args.kl.split(","))
    with torch.no_grad():
        gemm_ms = [{"m": m, "n": n, "k": k, "ms": gemm(m, n, k, args.repeats)} for (m, n, k) in shapes]
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0),
        "gemm": gemm_ms,
        "attentionMs": attention(b, t, h, hk, d, args.repeats),
        "klMs": kl(rows, vocab, args.repeats),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
