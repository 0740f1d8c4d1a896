#pragma once
// Helpers for the nn tests: weights that make a parity check meaningful, the seed's
// state_dict tables, and the Python reference (tests/nn/reference/seed_networks.py).
#include "nn/Networks.h"

#include <QString>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace liverseg::test {

// He-normal conv weights, small random biases, and BatchNorm affine parameters and running
// statistics far from their defaults (so eval-mode BatchNorm matters). Deterministic.
void randomizeForParity(torch::nn::Module& module, std::uint64_t seed);

struct SeedTensor {
    std::string name;
    std::string shape;  // "64x3x3x3", "scalar"
    std::string dtype;  // "float32", "int64"
};
// tests/nn/reference/seed_<arch>_state_dict.tsv (a copy of ../shared/interop/), in order.
std::vector<SeedTensor> seedStateDict(const std::string& architecture);
// The same description of a module's stateDict().
std::vector<SeedTensor> describeStateDict(const torch::nn::Module& module);

// A Python interpreter that can `import torch`, or nullopt; looked up once. LIVERSEG_PYTHON
// names the only one to try; otherwise python3, then /usr/bin/python3 (Debian's python3-torch
// lives there when another python3 comes first on PATH).
std::optional<QString> pythonWithTorch();
// Runs the reference on a list of jobs (see seed_networks.py) in `folder`; false with the
// reference's stderr in *error when it fails.
bool runReference(const nlohmann::json& jobs, const std::filesystem::path& folder, QString* error);

double maxAbsDifference(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace liverseg::test
