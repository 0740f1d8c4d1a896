#include "nn/ModelFiles.h"

#include "core/Errors.h"
#include "nn/Checkpoint.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <chrono>

namespace liverseg::nn {
namespace {

ModelDescription describe(const CheckpointInfo& info, const SegmentationNetworkImpl& network) {
    ModelDescription description;
    description.info = info;
    description.parameterCount = network.parameterCount();
    for (const auto& item : stateDict(network)) {
        ++description.stateTensorCount;
        description.weightBytes += std::int64_t(item.value().nbytes());
    }
    return description;
}

}  // namespace

ModelDescription describeCheckpoint(const std::filesystem::path& checkpoint) {
    const LoadedModel model = loadCheckpoint(checkpoint);
    return describe(model.info, *model.network);
}

ModelDescription describeArchitecture(const ModelConfig& config) {
    CheckpointInfo info;
    info.config = config;
    info.preprocessing.sliceContext = config.inputChannels;
    return describe(info, *makeNetwork(config));
}

void initCheckpoint(const CheckpointInfo& info, std::uint64_t seed, const std::filesystem::path& out) {
    info.validate();
    torch::manual_seed(seed);
    saveCheckpoint(out, info, *makeNetwork(info.config));
}

void importStateDict(const std::filesystem::path& stateDictFile, const CheckpointInfo& info,
                     const std::filesystem::path& out) {
    info.validate();
    const SegmentationNetwork network =
        networkFromStateDict(info.config, readStateDictFile(stateDictFile), stateDictFile.string());
    saveCheckpoint(out, info, *network);
}

void exportStateDict(const std::filesystem::path& checkpoint, const std::filesystem::path& out) {
    writeStateDictFile(out, stateDict(*loadCheckpoint(checkpoint).network));
}

ForwardRun forwardTensorFile(const std::filesystem::path& checkpoint, const std::filesystem::path& input,
                             const std::filesystem::path& output) {
    const LoadedModel model = loadCheckpoint(checkpoint);
    torch::Tensor x = readTensorFile(input);
    ForwardRun run;
    run.inputShape = x.sizes().vec();
    const bool single = x.dim() == 3;
    if (single) x = x.unsqueeze(0);
    if (x.is_floating_point()) x = x.to(torch::kFloat).contiguous();
    torch::Tensor logits;
    {
        torch::InferenceMode inference;
        const auto start = std::chrono::steady_clock::now();
        try {
            logits = model.network->forward(x);
        } catch (const core::InputError& error) {
            throw core::InputError(input.string() + ": " + error.what());
        }
        run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (single) logits = logits.squeeze(0);
    run.outputShape = logits.sizes().vec();
    writeTensorFile(output, logits);
    return run;
}

}  // namespace liverseg::nn
