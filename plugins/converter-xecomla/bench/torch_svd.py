"""The SVDs of an X-EcoMLA conversion done by PyTorch, for `bench-convert.mjs` (never a runtime
dependency). Reads the same checkpoint (bf16/f16/f32 safetensors, sharded or not) with a small
reader of its own, and for every layer runs torch.linalg.svd on W_q and on the repeat-interleaved
[K; V] stack in float32, as the seed does. Prints one JSON line."""
import json, os, struct, sys, time
import torch

def read_tensors(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for f in files:
        path = os.path.join(folder, f)
        with open(path, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
            base = 8 + n
            for name, info in header.items():
                if name == "__metadata__" or ".self_attn." not in name:
                    continue
                b, e = info["data_offsets"]
                fh.seek(base + b)
                raw = bytearray(fh.read(e - b))
                dt = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[info["dtype"]]
                out[name] = torch.frombuffer(raw, dtype=dt).reshape(info["shape"]).float()
    return out

def main():
    folder, threads, full = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "full"
    torch.set_num_threads(threads)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // h
    t = read_tensors(folder)
    start = time.perf_counter()
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}.self_attn."
        torch.linalg.svd(t[p + "q_proj.weight"], full_matrices=full)
        k = t[p + "k_proj.weight"].view(kv, hd, -1).repeat_interleave(h // kv, dim=0).reshape(h * hd, -1)
        v = t[p + "v_proj.weight"].view(kv, hd, -1).repeat_interleave(h // kv, dim=0).reshape(h * hd, -1)
        torch.linalg.svd(torch.cat([k, v], 0), full_matrices=full)
    print(json.dumps({"seconds": time.perf_counter() - start, "torch": torch.__version__, "threads": threads, "full_matrices": full}))

main()
