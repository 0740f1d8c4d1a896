#pragma once
// Checkpoints (config + preprocessing + training metadata + weights in one file) and plain
// PyTorch state_dict files, both in torch.save's zip format so Python's torch.load reads
// them and ours reads Python's.
//
// A checkpoint is the pickled dict
//   {"format": "liverseg-checkpoint", "version": 1,
//    "metadata": <JSON text of CheckpointInfo>, "state_dict": {name: tensor}}
// with the seed's state_dict names, so in Python
//   ckpt = torch.load(path); model.load_state_dict(ckpt["state_dict"])
#include "nn/ModelConfig.h"
#include "nn/Networks.h"

#include <torch/ordered_dict.h>

#include <filesystem>
#include <string>

namespace liverseg::nn {

constexpr const char* kCheckpointFormat = "liverseg-checkpoint";
constexpr int kCheckpointVersion = 1;

using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

// PyTorch's module.state_dict(): every parameter and buffer (BatchNorm running stats and
// num_batches_tracked), named and ordered as Python names and orders them. The tensors
// share storage with the module.
StateDict stateDict(const torch::nn::Module& module);

// Copies `weights` into the module's parameters and buffers, strictly: every name must be
// present with the module's shape, and no other names. Otherwise throws core::InputError
// "<source>: ..." naming the first offender. Floating dtypes are converted as PyTorch does.
void loadStateDict(torch::nn::Module& module, const StateDict& weights, const std::string& source);

// A torch.save'd dict of name -> tensor (what `torch.save(model.state_dict(), path)` writes;
// a dict holding it under "state_dict" or "model_state_dict" is accepted too). Throws
// core::InputError for anything else, and for a liverseg checkpoint (not a plain state_dict).
StateDict readStateDictFile(const std::filesystem::path& path);
// Writes `weights` (on the CPU) atomically; Python's torch.load gives a dict name -> tensor.
void writeStateDictFile(const std::filesystem::path& path, const StateDict& weights);

// A network built from `config` with `weights` loaded strictly (a "module." prefix, as
// nn.DataParallel writes, is dropped). Eval mode.
SegmentationNetwork networkFromStateDict(const ModelConfig& config, const StateDict& weights,
                                         const std::string& source);

// A checkpoint ready to use: its info and its network (CPU, eval mode, weights loaded).
struct LoadedModel {
    CheckpointInfo info;
    SegmentationNetwork network;
};

// Writes the checkpoint atomically. info.config must be the network's config.
void saveCheckpoint(const std::filesystem::path& path, const CheckpointInfo& info,
                    const SegmentationNetworkImpl& network);
// Reads and validates a checkpoint: core::InputError "<path>: ..." when the file is missing,
// corrupt or truncated, not a liverseg checkpoint, of another version, has bad metadata, or
// weights that do not fit its config (naming the first missing/unexpected/mis-shaped one).
LoadedModel loadCheckpoint(const std::filesystem::path& path);

// Reads a torch.save'd tensor (e.g. `torch.save(x, "x.pt")`); writes one the same way.
torch::Tensor readTensorFile(const std::filesystem::path& path);
void writeTensorFile(const std::filesystem::path& path, const torch::Tensor& tensor);

}  // namespace liverseg::nn
