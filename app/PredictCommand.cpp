#include "app/BundledModels.h"
#include "app/Commands.h"
#include "app/TerminalProgress.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/LabelOps.h"
#include "nn/Checkpoint.h"
#include "nn/InferenceEngine.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>

namespace liverseg::app {
namespace {

namespace fs = std::filesystem;

const char* kHelp = R"(usage: liverseg predict --input CT --output MASK.nii.gz [--model unet|unet3plus|both]
                        [--weights CKPT [--weights2 CKPT]]
                        [--output2 MASK2.nii.gz] [--probabilities P.nii.gz]
                        [--device auto|cpu|cuda] [--threads N] [--precision fp32|bf16]
                        [--batch N] [--no-postprocess] [--series UID]

Segments the liver in CT (a .nii/.nii.gz/.nrrd/.mha file or a DICOM folder) and writes a
0/1 mask on exactly the CT's grid. Without --weights it runs the bundled default weights
(assets/models, see its MODEL_CARD.md): --model both (the default) runs UNet and then
UNet3+, unet or unet3plus one of them. With --weights2 (or --model both) a second network
runs too; its mask goes to --output2 (default: MASK with ".2" before the extension) and
the two masks' Dice is printed. --probabilities writes the first network's sigmoid output
x 255 (uint8).
  --device       auto (CUDA when LibTorch has it and a GPU is present) | cpu | cuda
  --threads      LibTorch threads (default: every core)
  --precision    fp32 (default) | bf16
  --batch        slices per forward pass (default 4)
  --no-postprocess  keep every component and hole (default: largest 3D component, holes filled)
)";

fs::path secondOutputPath(const fs::path& first) {
    const std::string name = first.filename().string();
    const std::string ext = name.size() > 7 && name.substr(name.size() - 7) == ".nii.gz" ? ".nii.gz" : first.extension().string();
    return first.parent_path() / (name.substr(0, name.size() - ext.size()) + ".2" + ext);
}

void requireWritableTarget(const fs::path& path) {
    if (!core::isSupportedImageExtension(path) || path.extension() == ".dcm") {
        throw core::InputError(path.string() + ": output must be .nii.gz, .nii, .nrrd or .mha");
    }
    const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    if (!fs::is_directory(folder)) throw core::InputError(path.string() + ": folder " + folder.string() + " does not exist");
}

struct Run {
    std::string name;
    nn::Segmentation segmentation;
};

// A checkpoint loaded and prepared for inference: loading comes first, so a wrong
// checkpoint is reported before any CT is read.
struct Model {
    std::string name;
    std::string shortName;
    std::unique_ptr<nn::InferenceEngine> engine;
};

Model loadModel(const fs::path& checkpoint, const nn::InferenceOptions& options) {
    nn::LoadedModel model = nn::loadCheckpoint(checkpoint);
    return {model.info.config.describe(), nn::toString(model.info.config.architecture),
            std::make_unique<nn::InferenceEngine>(model.network, model.info.preprocessing, options)};
}

Run segmentWith(const Model& model, const core::CtVolume& ct, nn::Precision precision) {
    std::cerr << "predict: " << model.name << " on " << model.engine->deviceName() << ", " << nn::toString(precision)
              << "\n";
    TerminalProgress bar("  " + model.shortName);
    nn::InferenceProgress progress;
    progress.onProgress = [&](std::size_t done, std::size_t total) { bar.update(done, total); };
    try {
        Run run{model.name, model.engine->segment(ct, progress)};
        bar.finish();
        return run;
    } catch (const c10::Error& error) {
        const std::string what = error.what_without_backtrace();
        if (what.find("out of memory") != std::string::npos) {
            throw core::InputError("out of memory on " + model.engine->deviceName() +
                                   "; try --device cpu or a smaller --batch");
        }
        throw;
    }
}

void printTimings(const Run& run, std::size_t slices) {
    const nn::InferenceTimings& t = run.segmentation.timings;
    std::cerr << std::fixed << std::setprecision(2) << "  " << run.name << ": " << t.totalSeconds << " s total ("
              << t.forwardSeconds << " s forward = " << std::setprecision(3) << t.forwardSeconds / double(slices)
              << " s/slice, " << std::setprecision(2) << t.preprocessSeconds << " s preprocess, "
              << t.resampleBackSeconds << " s back to CT grid, " << t.postprocessSeconds << " s post-processing), "
              << core::countNonZero(run.segmentation.mask) << " liver voxels\n";
}

// --weights [--weights2], or the bundled weights --model names (both by default).
std::vector<fs::path> chosenCheckpoints(Arguments& arguments) {
    const auto weights = arguments.value("--weights");
    const auto weights2 = arguments.value("--weights2");
    const auto model = arguments.value("--model");
    if (weights && model) throw UsageError("predict: give --weights or --model, not both");
    if (weights2 && !weights) throw UsageError("predict: --weights2 needs --weights");
    if (weights) {
        std::vector<fs::path> checkpoints{*weights};
        if (weights2) checkpoints.emplace_back(*weights2);
        return checkpoints;
    }
    std::vector<fs::path> checkpoints;
    for (const std::string& name : bundledModelNames(model.value_or("both"), "predict: --model")) {
        checkpoints.push_back(bundledModel(name));
    }
    return checkpoints;
}

}  // namespace

int runPredict(Arguments& arguments) {
    if (arguments.wantsHelp()) {
        std::cout << kHelp;
        return 0;
    }
    const std::vector<fs::path> checkpoints = chosenCheckpoints(arguments);
    const fs::path input = arguments.required("--input");
    const fs::path output = arguments.required("--output");
    const fs::path output2 = arguments.value("--output2").value_or(secondOutputPath(output).string());
    const auto probabilities = arguments.value("--probabilities");
    nn::InferenceOptions options;
    options.device = nn::parseDeviceChoice(arguments.value("--device").value_or("auto"));
    options.precision = nn::parsePrecision(arguments.value("--precision").value_or("fp32"));
    options.threads = arguments.integer("--threads", 0, 0, 1024);
    options.batchSize = arguments.integer("--batch", 4, 1, 1024);
    options.postprocess = !arguments.flag("--no-postprocess");
    core::CtReadOptions readOptions;
    readOptions.seriesUid = arguments.value("--series").value_or("");
    arguments.positionals(0, 0);

    requireWritableTarget(output);
    if (checkpoints.size() > 1) requireWritableTarget(output2);
    if (probabilities) requireWritableTarget(*probabilities);

    const Model firstModel = loadModel(checkpoints.front(), options);
    const std::optional<Model> secondModel =
        checkpoints.size() > 1 ? std::optional<Model>(loadModel(checkpoints.back(), options)) : std::nullopt;
    const core::LoadedCt ct = core::readCt(input, readOptions);
    for (const auto& warning : ct.source.warnings) std::cerr << "predict: warning: " << warning << "\n";
    std::cerr << "predict: " << input.string() << " (" << core::describe(ct.volume.geometry()) << ")\n";
    const std::size_t slices = ct.volume.size()[2];

    const Run first = segmentWith(firstModel, ct.volume, options.precision);
    std::optional<Run> second;
    if (secondModel) second = segmentWith(*secondModel, ct.volume, options.precision);

    core::writeLabelMap(first.segmentation.mask, output);
    std::cout << "wrote " << output.string() << "\n";
    if (probabilities) {
        core::writeLabelMap(first.segmentation.probabilities, *probabilities);
        std::cout << "wrote " << *probabilities << "\n";
    }
    printTimings(first, slices);
    if (second) {
        core::writeLabelMap(second->segmentation.mask, output2);
        std::cout << "wrote " << output2.string() << "\n";
        printTimings(*second, slices);
        std::cout << "agreement (Dice) between the two networks: " << std::fixed << std::setprecision(4)
                  << core::diceCoefficient(first.segmentation.mask, second->segmentation.mask) << "\n";
    }
    return 0;
}

}  // namespace liverseg::app
