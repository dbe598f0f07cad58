"""Run a CPU PyTorch baseline script on the GPU: `python3 torch_on_cuda.py SCRIPT ARGS...`.

The training-step baseline of `ecomla bench train` (@ecomla/losses' bench/torch_train_step.py) creates
its tensors on the default device and times with time.perf_counter. Here the default device becomes
"cuda" (TF32 off, as the ecomla backend computes in fp32) and perf_counter synchronises the GPU first,
so the same script measures PyTorch eager on the GPU. `-c CODE` is passed through (the CLI probes
`python -c "import torch"`). scripts/gpu-check.sh points ECOMLA_PYTHON at a shim that runs this.
"""
import runpy
import sys
import time

import torch

if len(sys.argv) >= 3 and sys.argv[1] == "-c":
    exec(sys.argv[2])
    sys.exit(0)

torch.set_default_device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
_perf = time.perf_counter


def _synced_perf_counter():
    torch.cuda.synchronize()
    return _perf()


time.perf_counter = _synced_perf_counter
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
