#include "tests/nn/DistributedScenario.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdlib>

namespace liverseg::test {

nn::ModelConfig scenarioModel(const DistributedScenario& scenario) {
    nn::ModelConfig config;
    config.architecture = nn::Architecture::UNet;
    config.padding = nn::UNetPadding::Same;
    config.baseWidth = scenario.width;
    return config;
}

ScenarioData scenarioData(const DistributedScenario& scenario) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(scenario.dataSeed);
    ScenarioData data;
    data.inputs = at::randn({scenario.samples, 3, scenario.side, scenario.side}, generator);
    // Blob-like masks: where the smoothed middle channel is positive.
    const torch::Tensor smooth = torch::avg_pool2d(data.inputs.narrow(1, 1, 1), 5, 1, 2);
    data.targets = (smooth > 0).to(torch::kFloat);
    return data;
}

nn::SegmentationNetwork scenarioNetwork(const DistributedScenario& scenario, std::uint64_t initSeed) {
    torch::manual_seed(initSeed);
    nn::SegmentationNetwork network = nn::makeNetwork(scenarioModel(scenario));
    network->train(scenario.batchNormTrainMode);
    return network;
}

std::vector<std::vector<std::int64_t>> scenarioStepBatches(const DistributedScenario& scenario, int rank, int worldSize) {
    std::vector<std::vector<std::int64_t>> steps;
    for (int epoch = 0; epoch < scenario.epochs; ++epoch) {
        const std::vector<std::int64_t> shard =
            nn::shardIndices(scenario.samples, scenario.epochSeedBase + std::uint64_t(epoch), rank, worldSize);
        for (std::size_t start = 0; start < shard.size(); start += std::size_t(scenario.batchPerRank)) {
            const std::size_t stop = std::min(shard.size(), start + std::size_t(scenario.batchPerRank));
            steps.emplace_back(shard.begin() + std::ptrdiff_t(start), shard.begin() + std::ptrdiff_t(stop));
        }
    }
    return steps;
}

torch::Tensor scenarioLoss(nn::SegmentationNetworkImpl& network, const ScenarioData& data,
                           const std::vector<std::int64_t>& samples) {
    const torch::Tensor index = torch::tensor(samples, torch::kLong);
    const torch::Tensor logits = network.forward(data.inputs.index_select(0, index));
    return torch::binary_cross_entropy_with_logits(logits, data.targets.index_select(0, index));
}

namespace {

torch::optim::Adam makeOptimizer(const DistributedScenario& scenario, nn::SegmentationNetworkImpl& network) {
    return torch::optim::Adam(network.parameters(), torch::optim::AdamOptions(scenario.learningRate));
}

std::vector<torch::Tensor> cloneBuffers(const torch::nn::Module& module) {
    std::vector<torch::Tensor> copies;
    for (const torch::Tensor& buffer : module.buffers()) copies.push_back(buffer.detach().clone());
    return copies;
}

void restoreBuffers(torch::nn::Module& module, const std::vector<torch::Tensor>& copies) {
    torch::NoGradGuard noGrad;
    std::size_t index = 0;
    for (torch::Tensor& buffer : module.buffers()) buffer.copy_(copies.at(index++));
}

}  // namespace

ScenarioRun trainDataParallel(nn::DistributedContext& context, const DistributedScenario& scenario,
                              nn::SegmentationNetworkImpl& network, int stopAfterSteps) {
    const ScenarioData data = scenarioData(scenario);
    context.broadcastParameters(network);
    torch::optim::Adam optimizer = makeOptimizer(scenario, network);
    ScenarioRun run;
    int step = 0;
    for (const std::vector<std::int64_t>& batch : scenarioStepBatches(scenario, context.rank(), context.worldSize())) {
        if (step++ == stopAfterSteps) std::_Exit(3);
        context.broadcastBuffers(network);
        optimizer.zero_grad();
        const torch::Tensor loss = scenarioLoss(network, data, batch);
        loss.backward();
        context.allReduceGradients(network);
        optimizer.step();
        run.meanLosses.push_back(context.allReduceMean(loss.item<double>()));
    }
    context.broadcastBuffers(network);
    return run;
}

ScenarioRun trainReferencePerReplica(const DistributedScenario& scenario, nn::SegmentationNetworkImpl& network,
                                     int worldSize) {
    const ScenarioData data = scenarioData(scenario);
    std::vector<std::vector<std::vector<std::int64_t>>> replicaSteps;
    for (int rank = 0; rank < worldSize; ++rank) replicaSteps.push_back(scenarioStepBatches(scenario, rank, worldSize));
    torch::optim::Adam optimizer = makeOptimizer(scenario, network);
    ScenarioRun run;
    for (std::size_t step = 0; step < replicaSteps.front().size(); ++step) {
        optimizer.zero_grad();
        double lossSum = 0.0;
        std::vector<torch::Tensor> replicaZeroBuffers;
        for (int rank = 0; rank < worldSize; ++rank) {
            const torch::Tensor loss = scenarioLoss(network, data, replicaSteps[std::size_t(rank)][step]);
            loss.backward();  // accumulates: the sum of the replicas' gradients
            lossSum += loss.item<double>();
            if (rank == 0) replicaZeroBuffers = cloneBuffers(network);
        }
        restoreBuffers(network, replicaZeroBuffers);
        {
            torch::NoGradGuard noGrad;
            for (torch::Tensor& parameter : network.parameters()) {
                if (parameter.grad().defined()) parameter.mutable_grad().div_(worldSize);
            }
        }
        optimizer.step();
        run.meanLosses.push_back(lossSum / worldSize);
    }
    return run;
}

ScenarioRun trainReferenceCombined(const DistributedScenario& scenario, nn::SegmentationNetworkImpl& network,
                                   int worldSize) {
    const ScenarioData data = scenarioData(scenario);
    std::vector<std::vector<std::vector<std::int64_t>>> replicaSteps;
    for (int rank = 0; rank < worldSize; ++rank) replicaSteps.push_back(scenarioStepBatches(scenario, rank, worldSize));
    torch::optim::Adam optimizer = makeOptimizer(scenario, network);
    ScenarioRun run;
    for (std::size_t step = 0; step < replicaSteps.front().size(); ++step) {
        std::vector<std::int64_t> combined;
        for (const auto& steps : replicaSteps) combined.insert(combined.end(), steps[step].begin(), steps[step].end());
        optimizer.zero_grad();
        const torch::Tensor loss = scenarioLoss(network, data, combined);
        loss.backward();
        optimizer.step();
        run.meanLosses.push_back(loss.item<double>());
    }
    return run;
}

}  // namespace liverseg::test
