// Training benchmark: liverseg's Trainer step (slices read from the memory-mapped slice
// cache, forward, BCEWithLogits, backward, Adam) against eager PyTorch doing the seed's step
// (benchmarks/eager_training.py, its input already in memory) on the same initial weights,
// batch shape and thread count, interleaved round by round because this machine is noisy.
// Prints slices per second for both and their ratio, and writes JSON.
#include "benchmarks/BenchmarkSupport.h"
#include "core/Dataset.h"
#include "core/ImageIO.h"
#include "core/Phantom.h"
#include "core/SliceCache.h"
#include "nn/Checkpoint.h"
#include "nn/Networks.h"
#include "nn/Threads.h"
#include "nn/Trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace liverseg;

struct Settings {
    int threads = 0;
    int steps = 5;
    int rounds = 3;
    int width = 16;
    int side = 128;
    int batch = 8;
    std::vector<std::string> architectures{"unet", "unet3plus"};
    std::string python = "/usr/bin/python3";
    std::string out = "benchmark-training.json";
};

using benchmark::median;

Settings parse(int argc, char** argv) {
    Settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i], value = argv[i + 1];
        if (key == "--threads") s.threads = std::stoi(value);
        else if (key == "--steps") s.steps = std::stoi(value);
        else if (key == "--rounds") s.rounds = std::stoi(value);
        else if (key == "--width") s.width = std::stoi(value);
        else if (key == "--side") s.side = std::stoi(value);
        else if (key == "--batch") s.batch = std::stoi(value);
        else if (key == "--arch") {
            s.architectures.clear();
            std::stringstream stream(value);
            for (std::string item; std::getline(stream, item, ',');) s.architectures.push_back(item);
        } else if (key == "--python") s.python = value;
        else if (key == "--out") s.out = value;
        else throw std::invalid_argument("unknown option " + key);
    }
    return s;
}

double eagerStepMedian(const Settings& s, const std::string& arch, const fs::path& weights) {
    const fs::path script = fs::path(LIVERSEG_SOURCE_DIR) / "benchmarks" / "eager_training.py";
    std::ostringstream command;
    command << s.python << " " << script << " " << arch << " " << s.width << " " << weights << " " << s.side << " "
            << s.batch << " " << nn::intraOpThreads() << " " << s.steps;
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.str().c_str(), "r"), pclose);
    if (!pipe) throw std::runtime_error("cannot run " + command.str());
    std::string output;
    char buffer[4096];
    while (fgets(buffer, sizeof buffer, pipe.get())) output += buffer;
    if (output.find('{') == std::string::npos) throw std::runtime_error("no result from " + command.str());
    return nlohmann::json::parse(output.substr(output.rfind('{')))["median_s"].get<double>();
}

double oursStepMedian(nn::Trainer& trainer, const std::vector<nn::SliceRef>& batch, int steps) {
    trainer.trainStep(batch);  // warm-up
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
        const auto start = std::chrono::steady_clock::now();
        trainer.trainStep(batch);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return median(times);
}

// A phantom case prepared into a slice cache of side x side planes.
std::shared_ptr<core::SliceCache> phantomCache(const Settings& s, const fs::path& folder, core::Dataset& dataset) {
    core::PhantomOptions options;
    options.size = {std::size_t(s.side), std::size_t(s.side), std::size_t(std::max(s.batch, 8))};
    const core::PhantomCase phantom = core::makeAbdominalPhantom(options);
    fs::create_directories(folder / "data" / "case");
    core::writeCtVolume(phantom.ct, folder / "data" / "case" / "ct.nii.gz");
    core::writeLabelMap(phantom.liver, folder / "data" / "case" / "liver.nii.gz");
    dataset = core::openDataset(folder / "data");
    core::SlicePreparation preparation;
    preparation.side = s.side;
    return std::make_shared<core::SliceCache>(dataset, preparation, folder / "cache");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Settings s = parse(argc, argv);
        nn::setIntraOpThreads(s.threads);
        const fs::path folder = fs::temp_directory_path() / ("liverseg-train-benchmark-" + std::to_string(::getpid()));
        core::Dataset dataset;
        const auto cache = phantomCache(s, folder, dataset);
        core::DatasetSplit split;
        split.training = {0};
        nlohmann::json report{{"threads", nn::intraOpThreads()}, {"side", s.side}, {"batch", s.batch}, {"width", s.width},
                              {"results", nlohmann::json::array()}};
        std::cout << "training step (" << s.batch << " x 3 x " << s.side << " x " << s.side << ", width " << s.width << ", "
                  << nn::intraOpThreads() << " threads), slices per second, ours vs eager PyTorch:\n";
        for (const std::string& arch : s.architectures) {
            nn::ModelConfig config;
            config.architecture = nn::parseArchitecture(arch);
            config.baseWidth = s.width;
            torch::manual_seed(1);
            nn::SegmentationNetwork network = nn::makeNetwork(config);
            const fs::path weights = folder / (arch + ".pt");
            nn::writeStateDictFile(weights, nn::stateDict(*network));
            nn::TrainingOptions options;
            options.batchSize = s.batch;
            const nn::TrainingData data = nn::makeTrainingData(cache, dataset, split);
            const std::vector<nn::SliceRef> batch(data.trainingSlices.begin(), data.trainingSlices.begin() + s.batch);
            nn::Trainer trainer(network, data, options);
            std::vector<double> ours, eager, ratios;
            for (int round = 0; round < s.rounds; ++round) {
                eager.push_back(double(s.batch) / eagerStepMedian(s, arch, weights));
                ours.push_back(double(s.batch) / oursStepMedian(trainer, batch, s.steps));
                ratios.push_back(ours.back() / eager.back());
                std::cout << "  " << arch << " round " << round + 1 << ": ours " << std::fixed << std::setprecision(2)
                          << ours.back() << " slices/s, eager " << eager.back() << " slices/s, ratio " << std::setprecision(3)
                          << ratios.back() << "\n"
                          << std::flush;
            }
            report["results"].push_back({{"arch", arch}, {"ours_slices_per_s", median(ours)},
                                         {"eager_slices_per_s", median(eager)}, {"ratio_median", median(ratios)},
                                         {"ours_rounds", ours}, {"eager_rounds", eager}});
        }
        fs::remove_all(folder);
        std::ofstream(s.out) << report.dump(2) << "\n";
        std::cout << "\nsummary (median over rounds; ratio > 1: liverseg is faster):\n";
        for (const auto& row : report["results"]) {
            std::cout << "  " << std::setw(10) << std::left << row["arch"].get<std::string>() << " ours " << std::fixed
                      << std::setprecision(2) << row["ours_slices_per_s"].get<double>() << "  eager "
                      << row["eager_slices_per_s"].get<double>() << "  ratio " << std::setprecision(3)
                      << row["ratio_median"].get<double>() << "\n";
        }
        std::cout << "wrote " << s.out << "\n";
        return 0;
    } catch (const std::exception& error) {
        std::cerr << "benchmark: " << error.what() << "\n";
        return 2;
    }
}
