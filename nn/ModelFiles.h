#pragma once
// Whole-file operations on models, behind `liverseg model`: describe, init, import, export,
// forward. Torch-free header; every function throws core::InputError for bad input.
#include "nn/ModelConfig.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace liverseg::nn {

struct ModelDescription {
    CheckpointInfo info;            // an architecture alone: the default preprocessing, no training
    std::int64_t parameterCount = 0;
    std::int64_t stateTensorCount = 0;  // entries in the state_dict (parameters + BatchNorm buffers)
    std::int64_t weightBytes = 0;       // of parameters and buffers
};

// Reads and fully validates a checkpoint.
ModelDescription describeCheckpoint(const std::filesystem::path& checkpoint);
ModelDescription describeArchitecture(const ModelConfig& config);

// A checkpoint with LibTorch's default initialisation after torch::manual_seed(seed): the
// same seed gives the same weights.
void initCheckpoint(const CheckpointInfo& info, std::uint64_t seed, const std::filesystem::path& out);

// A checkpoint from a PyTorch state_dict file with the seed's key names.
void importStateDict(const std::filesystem::path& stateDictFile, const CheckpointInfo& info,
                     const std::filesystem::path& out);

// The checkpoint's weights as a PyTorch state_dict file (seed key names, torch.save format).
void exportStateDict(const std::filesystem::path& checkpoint, const std::filesystem::path& out);

struct ForwardRun {
    std::vector<std::int64_t> inputShape;
    std::vector<std::int64_t> outputShape;
    double seconds = 0;  // the forward pass alone
};

// Runs the raw network (eval, no grad) on a torch.save'd tensor, (N, C, H, W) or (C, H, W),
// floating point; writes the logits the same way with the same number of dimensions.
ForwardRun forwardTensorFile(const std::filesystem::path& checkpoint, const std::filesystem::path& input,
                             const std::filesystem::path& output);

}  // namespace liverseg::nn
