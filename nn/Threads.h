#pragma once
// LibTorch's intra-op thread count. LibTorch starts with 1 thread on some machines (this
// 2-core VM among them), so commands set it explicitly from a user setting.

namespace liverseg::nn {

// The cores this process may use (at least 1).
int availableCores();

// Sets LibTorch's intra-op threads: `count` <= 0 means availableCores(). Returns the count
// now in use.
int setIntraOpThreads(int count = 0);

int intraOpThreads();

}  // namespace liverseg::nn
