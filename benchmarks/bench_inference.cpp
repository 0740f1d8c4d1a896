// Inference benchmark: liverseg's prepared networks against eager PyTorch (the seed
// networks of tests/nn/reference run by benchmarks/eager_reference.py) on the same weights,
// input and thread count, interleaved round by round because this machine is noisy; then
// a whole-volume predict on a phantom. Prints a table and writes JSON.
#include "benchmarks/BenchmarkSupport.h"
#include "core/ImageIO.h"
#include "core/LabelOps.h"
#include "core/Phantom.h"
#include "nn/Checkpoint.h"
#include "nn/InferenceEngine.h"
#include "nn/Networks.h"
#include "nn/Threads.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <array>
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

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using namespace liverseg;

struct Settings {
    int threads = 0;
    int repeats = 3;
    int rounds = 3;
    int width = 64;
    int side = 256;
    std::vector<std::string> architectures{"unet", "unet3plus"};
    std::vector<std::string> precisions{"fp32", "bf16"};
    std::array<std::size_t, 3> volume{512, 512, 150};
    bool runVolume = true;
    std::string python = "/usr/bin/python3";
    std::string weights;  // optional trained checkpoint for the fp32-vs-bf16 Dice
    std::string out = "benchmark.json";
};

using benchmark::median;

std::vector<std::string> splitList(const std::string& text) {
    std::vector<std::string> items;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) items.push_back(item);
    return items;
}

Settings parse(int argc, char** argv) {
    Settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i], value = argv[i + 1];
        if (key == "--threads") s.threads = std::stoi(value);
        else if (key == "--repeats") s.repeats = std::stoi(value);
        else if (key == "--rounds") s.rounds = std::stoi(value);
        else if (key == "--width") s.width = std::stoi(value);
        else if (key == "--side") s.side = std::stoi(value);
        else if (key == "--arch") s.architectures = splitList(value);
        else if (key == "--precision") s.precisions = splitList(value);
        else if (key == "--volume") {
            const auto parts = splitList(value);
            if (parts.size() != 3) throw std::invalid_argument("--volume X,Y,Z");
            for (int d = 0; d < 3; ++d) s.volume[d] = std::stoul(parts[d]);
            s.runVolume = s.volume[2] > 0;
        } else if (key == "--python") s.python = value;
        else if (key == "--weights") s.weights = value;
        else if (key == "--out") s.out = value;
        else throw std::invalid_argument("unknown option " + key);
    }
    return s;
}

// Runs the eager reference once (it times `repeats` forwards after a warm-up) and returns
// its median seconds per forward.
double eagerMedian(const Settings& s, const std::string& arch, const fs::path& weights, const fs::path& input,
                   const std::string& precision) {
    const fs::path script = fs::path(LIVERSEG_SOURCE_DIR) / "benchmarks" / "eager_reference.py";
    std::ostringstream command;
    command << s.python << " " << script << " " << arch << " " << s.width << " " << weights << " " << input << " "
            << nn::intraOpThreads() << " " << precision << " " << s.repeats;
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.str().c_str(), "r"), pclose);
    if (!pipe) throw std::runtime_error("cannot run " + command.str());
    std::string output;
    char buffer[4096];
    while (fgets(buffer, sizeof buffer, pipe.get())) output += buffer;
    const auto json = nlohmann::json::parse(output.substr(output.rfind('{')));
    return json["median_s"].get<double>();
}

double oursMedian(const nn::InferenceEngine& engine, const torch::Tensor& input, int repeats) {
    engine.logits(input);  // warm-up
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
        const auto start = std::chrono::steady_clock::now();
        engine.logits(input);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return median(times);
}

nn::ModelConfig configFor(const std::string& arch, int width) {
    nn::ModelConfig config;
    config.architecture = nn::parseArchitecture(arch);
    config.baseWidth = width;
    return config;
}

nlohmann::json benchmarkForward(const Settings& s, const fs::path& folder) {
    nlohmann::json results = nlohmann::json::array();
    torch::manual_seed(7);
    const torch::Tensor input = torch::rand({1, 3, s.side, s.side});
    const fs::path inputPath = folder / "input.pt";
    nn::writeTensorFile(inputPath, input);
    for (const std::string& arch : s.architectures) {
        torch::manual_seed(1);
        const nn::ModelConfig config = configFor(arch, s.width);
        const nn::StateDict weights = nn::stateDict(*nn::makeNetwork(config));
        const fs::path weightsPath = folder / (arch + ".pt");
        nn::writeStateDictFile(weightsPath, weights);
        for (const std::string& precision : s.precisions) {
            nn::InferenceOptions options;
            options.device = nn::DeviceChoice::Cpu;
            options.threads = s.threads;
            options.precision = nn::parsePrecision(precision);
            const nn::InferenceEngine engine(nn::networkFromStateDict(config, weights, "benchmark"), nn::Preprocessing{},
                                             options);
            std::vector<double> ours, eager;
            for (int round = 0; round < s.rounds; ++round) {
                eager.push_back(eagerMedian(s, arch, weightsPath, inputPath, precision));
                ours.push_back(oursMedian(engine, input, s.repeats));
                std::cout << "  " << arch << " " << precision << " round " << round + 1 << ": ours " << std::fixed
                          << std::setprecision(3) << ours.back() << " s, eager " << eager.back() << " s, ratio "
                          << ours.back() / eager.back() << "\n"
                          << std::flush;
            }
            std::vector<double> ratios;
            for (std::size_t i = 0; i < ours.size(); ++i) ratios.push_back(ours[i] / eager[i]);
            results.push_back({{"arch", arch}, {"width", s.width}, {"precision", precision}, {"side", s.side},
                               {"threads", nn::intraOpThreads()}, {"ours_s", median(ours)}, {"eager_s", median(eager)},
                               {"ratio_median", median(ratios)}, {"ours_rounds_s", ours}, {"eager_rounds_s", eager}});
        }
    }
    return results;
}

nlohmann::json benchmarkVolume(const Settings& s) {
    core::PhantomOptions phantomOptions;
    phantomOptions.seed = 3;
    phantomOptions.size = s.volume;
    phantomOptions.spacing = Eigen::Vector3d(0.8, 0.8, 2.5);
    const core::PhantomCase phantom = core::makeAbdominalPhantom(phantomOptions);
    nn::LoadedModel model;
    if (!s.weights.empty()) {
        model = nn::loadCheckpoint(s.weights);
    } else {
        torch::manual_seed(1);
        model.info.config = configFor("unet", s.width);
        model.info.preprocessing.pixelSpacingMm = 1.6;  // the seed's 512 -> 256 at 0.8 mm
        model.network = nn::makeNetwork(model.info.config);
    }
    const nn::StateDict weights = nn::stateDict(*model.network);
    nlohmann::json results = nlohmann::json::array();
    std::optional<core::LabelMap> fp32Mask;
    for (const std::string& precision : s.precisions) {
        nn::InferenceOptions options;
        options.device = nn::DeviceChoice::Cpu;
        options.threads = s.threads;
        options.precision = nn::parsePrecision(precision);
        const nn::InferenceEngine engine(nn::networkFromStateDict(model.info.config, weights, "benchmark"),
                                         model.info.preprocessing, options);
        const nn::Segmentation result = engine.segment(phantom.ct);
        const nn::InferenceTimings& t = result.timings;
        nlohmann::json row{{"model", model.info.config.describe()}, {"weights", s.weights.empty() ? "random" : s.weights},
                           {"precision", precision}, {"size", s.volume}, {"total_s", t.totalSeconds},
                           {"forward_s", t.forwardSeconds}, {"preprocess_s", t.preprocessSeconds},
                           {"back_to_ct_grid_s", t.resampleBackSeconds}, {"postprocess_s", t.postprocessSeconds},
                           {"dice_vs_phantom_liver", core::diceCoefficient(result.mask, phantom.liver)}};
        if (!fp32Mask) fp32Mask = result.mask;
        else row["dice_vs_fp32"] = core::diceCoefficient(result.mask, *fp32Mask);
        std::cout << "  volume " << precision << ": " << row.dump() << "\n" << std::flush;
        results.push_back(row);
    }
    return results;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Settings settings = parse(argc, argv);
        nn::setIntraOpThreads(settings.threads);
        const fs::path folder = fs::temp_directory_path() / ("liverseg-benchmark-" + std::to_string(::getpid()));
        fs::create_directories(folder);
        nlohmann::json report{{"threads", nn::intraOpThreads()}, {"torch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH)}};
        std::cout << "forward per slice (" << settings.side << "x" << settings.side << ", width " << settings.width
                  << ", " << nn::intraOpThreads() << " threads), ours vs eager PyTorch:\n";
        report["forward"] = benchmarkForward(settings, folder);
        if (settings.runVolume) {
            std::cout << "whole-volume predict:\n";
            report["volume"] = benchmarkVolume(settings);
        }
        fs::remove_all(folder);
        std::ofstream(settings.out) << report.dump(2) << "\n";
        std::cout << "\nsummary (median over rounds):\n";
        for (const auto& row : report["forward"]) {
            std::cout << "  " << std::setw(10) << std::left << row["arch"].get<std::string>() << " "
                      << row["precision"].get<std::string>() << "  ours " << std::fixed << std::setprecision(3)
                      << row["ours_s"].get<double>() << " s  eager " << row["eager_s"].get<double>() << " s  ratio "
                      << row["ratio_median"].get<double>() << "\n";
        }
        std::cout << "wrote " << settings.out << "\n";
        return 0;
    } catch (const std::exception& error) {
        std::cerr << "benchmark: " << error.what() << "\n";
        return 2;
    }
}
