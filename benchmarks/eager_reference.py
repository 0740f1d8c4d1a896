#!/usr/bin/env python3
"""Eager PyTorch side of liverseg's inference benchmark: times the seed networks
(tests/nn/reference/seed_networks.py) on the same weights, input and thread count as the
C++ side, and prints one JSON line of per-forward seconds.

usage: eager_reference.py ARCH WIDTH WEIGHTS.pt INPUT.pt THREADS PRECISION REPEATS
"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "nn", "reference"))
import seed_networks  # noqa: E402


def main():
    arch, width, weights, input_path, threads, precision, repeats = sys.argv[1:8]
    torch.set_num_threads(int(threads))
    model = seed_networks.build({"arch": arch, "width": int(width)})
    model.load_state_dict(seed_networks.load_weights(weights), strict=True)
    model.eval()
    x = torch.load(input_path).float()
    times = []
    with torch.inference_mode():
        for i in range(int(repeats) + 1):  # the first run warms up
            start = time.perf_counter()
            if precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model(x)
            else:
                out = model(x)
            elapsed = time.perf_counter() - start
            if i > 0:
                times.append(elapsed)
    first = out[0] if isinstance(out, (list, tuple)) else out
    print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "times_s": times,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "output_shape": list(first.shape)}))


if __name__ == "__main__":
    main()
