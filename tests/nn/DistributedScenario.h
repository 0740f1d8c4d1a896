#pragma once
// A small data-parallel training run shared by the 2-process test (tests/nn/
// distributed_worker.cpp runs it on each rank) and the single-process references that the
// test compares it with (tests/nn/test_distributed.cpp).
#include "nn/Distributed.h"
#include "nn/Networks.h"

#include <cstdint>
#include <vector>

namespace liverseg::test {

struct DistributedScenario {
    int width = 4;  // UNet, padded convs
    int side = 32;
    int samples = 8;
    int batchPerRank = 2;
    int epochs = 2;
    double learningRate = 1e-3;
    std::uint64_t dataSeed = 7;
    std::uint64_t initSeed = 100;  // rank r initialises with initSeed + r; rank 0's must win
    std::uint64_t epochSeedBase = 1000;
    // true: BatchNorm normalises with batch statistics and updates its running statistics
    // (training as it is). false: BatchNorm frozen in eval mode, so every sample's loss is
    // independent of the others in its batch.
    bool batchNormTrainMode = true;
};

nn::ModelConfig scenarioModel(const DistributedScenario& scenario);

struct ScenarioData {
    torch::Tensor inputs;   // (samples, 3, side, side)
    torch::Tensor targets;  // (samples, 1, side, side), 0/1
};
ScenarioData scenarioData(const DistributedScenario& scenario);

// makeNetwork after torch::manual_seed(initSeed), in the scenario's BatchNorm mode.
nn::SegmentationNetwork scenarioNetwork(const DistributedScenario& scenario, std::uint64_t initSeed);

// The samples a rank trains on in each step: epoch by epoch, its shard in batches.
std::vector<std::vector<std::int64_t>> scenarioStepBatches(const DistributedScenario& scenario, int rank, int worldSize);

// Mean BCE-with-logits of the network on the given samples.
torch::Tensor scenarioLoss(nn::SegmentationNetworkImpl& network, const ScenarioData& data,
                           const std::vector<std::int64_t>& samples);

struct ScenarioRun {
    std::vector<double> meanLosses;  // per step, averaged over the ranks
};

// What each rank runs: start from rank 0's weights, then per step broadcast buffers, forward,
// backward, average gradients, Adam. Leaves every rank holding rank 0's buffers. With
// stopAfterSteps >= 0 the process exits (code 3) after that many steps, as a crashed rank
// would.
ScenarioRun trainDataParallel(nn::DistributedContext& context, const DistributedScenario& scenario,
                              nn::SegmentationNetworkImpl& network, int stopAfterSteps = -1);

// One process doing what DistributedDataParallel defines for `worldSize` replicas with
// BatchNorm in training mode: each replica's half-batch is forwarded separately (its own
// batch statistics), the gradients are averaged, and the running statistics are rank 0's.
ScenarioRun trainReferencePerReplica(const DistributedScenario& scenario, nn::SegmentationNetworkImpl& network,
                                     int worldSize);
// One process training on the combined batch (the replicas' batches concatenated) with
// one forward; equal to data-parallel training when samples do not interact (frozen BN).
ScenarioRun trainReferenceCombined(const DistributedScenario& scenario, nn::SegmentationNetworkImpl& network,
                                   int worldSize);

}  // namespace liverseg::test
