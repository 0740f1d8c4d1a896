// One rank of a data-parallel run, configured by torchrun's environment variables
// (nn/Distributed.h). Started by tests/nn/test_distributed.cpp, twice, on 127.0.0.1.
//
//   distributed_worker scenario --out DIR [--frozen-batchnorm] [--stop-after-steps N]
//       trains tests/nn/DistributedScenario's run and writes DIR/rank<R>.pt (state_dict)
//       and DIR/rank<R>.json ({"losses": [...], "backend": ...}).
//   distributed_worker benchmark [--width 16] [--side 128] [--batch 4] [--steps 10]
//                                [--threads N]  (default: cores / LOCAL_WORLD_SIZE)
//       times UNet training steps on random data; rank 0 prints one JSON line.
// Exit codes as liverseg's: 0 ok, 2 bad input (core::InputError), 1 anything else.
#include "core/Errors.h"
#include "nn/Checkpoint.h"
#include "nn/Distributed.h"
#include "nn/Threads.h"
#include "tests/nn/DistributedScenario.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

using namespace liverseg;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// --name value pairs and --flags after the mode.
std::map<std::string, std::string> parseOptions(int argc, char** argv) {
    std::map<std::string, std::string> options;
    for (int index = 2; index < argc; ++index) {
        const std::string name = argv[index];
        if (name.rfind("--", 0) != 0) throw core::InputError("unexpected argument " + name);
        const bool hasValue = index + 1 < argc && std::string(argv[index + 1]).rfind("--", 0) != 0;
        options[name.substr(2)] = hasValue ? argv[++index] : "";
    }
    return options;
}

int intOption(const std::map<std::string, std::string>& options, const std::string& name, int fallback) {
    const auto found = options.find(name);
    return found == options.end() ? fallback : std::stoi(found->second);
}

int runScenario(const std::map<std::string, std::string>& options) {
    const auto out = options.find("out");
    if (out == options.end()) throw core::InputError("--out DIR is required");
    nn::setIntraOpThreads(1);  // the reference in the test runs with one thread too
    const std::unique_ptr<nn::DistributedContext> context = nn::DistributedContext::fromEnvironment();

    test::DistributedScenario scenario;
    scenario.batchNormTrainMode = options.count("frozen-batchnorm") == 0;
    const nn::SegmentationNetwork network =
        test::scenarioNetwork(scenario, scenario.initSeed + std::uint64_t(context->rank()));
    const test::ScenarioRun run =
        test::trainDataParallel(*context, scenario, *network, intOption(options, "stop-after-steps", -1));

    const std::filesystem::path folder = out->second;
    const std::string name = "rank" + std::to_string(context->rank());
    nn::writeStateDictFile(folder / (name + ".pt"), nn::stateDict(*network));
    nlohmann::json report;
    report["losses"] = run.meanLosses;
    report["backend"] = context->backendName();
    report["world_size"] = context->worldSize();
    std::ofstream(folder / (name + ".json")) << report.dump() << "\n";
    context->barrier();  // nobody leaves while another rank still needs the store
    return 0;
}

int runBenchmark(const std::map<std::string, std::string>& options) {
    const std::unique_ptr<nn::DistributedContext> context = nn::DistributedContext::fromEnvironment();
    // 0: this host's cores shared among its processes.
    const int requestedThreads = intOption(options, "threads", 0);
    const int threads = nn::setIntraOpThreads(
        requestedThreads > 0 ? requestedThreads : std::max(1, nn::availableCores() / context->localWorldSize()));
    const int width = intOption(options, "width", 16);
    const int side = intOption(options, "side", 128);
    const int batch = intOption(options, "batch", 4);
    const int steps = intOption(options, "steps", 10);
    const int warmup = 2;

    nn::ModelConfig config;
    config.baseWidth = width;
    torch::manual_seed(1);
    const nn::SegmentationNetwork network = nn::makeNetwork(config);
    network->train();
    context->broadcastParameters(*network);
    torch::optim::Adam optimizer(network->parameters(), torch::optim::AdamOptions(5e-4));
    torch::manual_seed(2 + std::uint64_t(context->rank()));
    const torch::Tensor inputs = torch::randn({batch, 3, side, side});
    const torch::Tensor targets = (torch::randn({batch, 1, side, side}) > 0).to(torch::kFloat);

    std::vector<double> stepSeconds, syncSeconds;
    for (int step = 0; step < warmup + steps; ++step) {
        const Clock::time_point start = Clock::now();
        optimizer.zero_grad();
        const torch::Tensor loss = torch::binary_cross_entropy_with_logits(network->forward(inputs), targets);
        loss.backward();
        const Clock::time_point syncStart = Clock::now();
        context->allReduceGradients(*network);
        context->broadcastBuffers(*network);
        const double sync = secondsSince(syncStart);
        optimizer.step();
        context->allReduceMean(loss.item<double>());
        if (step >= warmup) {
            stepSeconds.push_back(secondsSince(start));
            syncSeconds.push_back(sync);
        }
    }
    const auto median = [](std::vector<double> values) {
        std::sort(values.begin(), values.end());
        return values[values.size() / 2];
    };
    // The all-reduce alone, every rank starting together (in the steps above it also absorbs
    // waiting for the slower rank).
    std::vector<double> allReduceSeconds;
    for (int repeat = 0; repeat < 10; ++repeat) {
        context->barrier();
        const Clock::time_point start = Clock::now();
        context->allReduceGradients(*network);
        allReduceSeconds.push_back(secondsSince(start));
    }
    std::int64_t gradientValues = 0;
    for (const torch::Tensor& parameter : network->parameters()) gradientValues += parameter.numel();
    const std::vector<double> meanOverRanks =
        context->allReduceSum({median(stepSeconds) / context->worldSize(), median(syncSeconds) / context->worldSize(),
                               median(allReduceSeconds) / context->worldSize()});
    if (context->isMain()) {
        const double step = median(stepSeconds);
        nlohmann::json report;
        report["world_size"] = context->worldSize();
        report["threads_per_process"] = threads;
        report["width"] = width;
        report["side"] = side;
        report["batch_per_process"] = batch;
        report["steps"] = steps;
        report["rank0_median_step_s"] = step;
        report["mean_over_ranks_median_step_s"] = meanOverRanks[0];
        report["mean_over_ranks_median_sync_s"] = meanOverRanks[1];
        report["mean_over_ranks_median_allreduce_only_s"] = meanOverRanks[2];
        report["gradient_megabytes"] = double(gradientValues) * 4 / 1e6;
        report["slices_per_s"] = batch * context->worldSize() / step;
        std::cout << report.dump() << std::endl;
    }
    context->barrier();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    try {
        const std::map<std::string, std::string> options = parseOptions(argc, argv);
        if (mode == "scenario") return runScenario(options);
        if (mode == "benchmark") return runBenchmark(options);
        std::cerr << "usage: distributed_worker scenario|benchmark [options]\n";
        return 2;
    } catch (const core::InputError& error) {
        std::cerr << "distributed_worker: " << error.what() << "\n";
        return 2;
    } catch (const std::exception& error) {
        std::cerr << "distributed_worker: internal error: " << error.what() << "\n";
        return 1;
    }
}
