#!/usr/bin/env python3
"""Eager PyTorch side of liverseg's training benchmark: the seed networks
(tests/nn/reference/seed_networks.py) doing the seed's training step (forward, BCEWithLogits,
backward, Adam 5e-4) on the same weights, batch shape and thread count as the C++ side;
prints one JSON line of per-step seconds.

usage: eager_training.py ARCH WIDTH WEIGHTS.pt SIDE BATCH THREADS STEPS
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
    arch, width, weights, side, batch, threads, steps = sys.argv[1:8]
    side, batch, steps = int(side), int(batch), int(steps)
    torch.set_num_threads(int(threads))
    torch.manual_seed(5)
    model = seed_networks.build({"arch": arch, "width": int(width)})
    model.load_state_dict(seed_networks.load_weights(weights), strict=True)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    loss_function = torch.nn.BCEWithLogitsLoss()
    x = torch.rand(batch, 3, side, side)
    y = (torch.rand(batch, 1, side, side) > 0.7).float()
    times = []
    for i in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        logits = out[0] if isinstance(out, (list, tuple)) else out
        loss = loss_function(logits, y)
        loss.backward()
        optimizer.step()
        elapsed = time.perf_counter() - start
        if i > 0:
            times.append(elapsed)
    print(json.dumps({"median_s": statistics.median(times), "times_s": times, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "loss": float(loss)}))


if __name__ == "__main__":
    main()
