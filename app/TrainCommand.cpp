#include "app/Commands.h"
#include "app/StopSignals.h"
#include "app/TerminalProgress.h"
#include "core/AtomicFile.h"
#include "core/Dataset.h"
#include "core/Errors.h"
#include "core/SliceCache.h"
#include "nn/Distributed.h"
#include "nn/Networks.h"
#include "nn/Threads.h"
#include "nn/Trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

namespace liverseg::app {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kHelp = R"(usage: liverseg train --data DIR --arch unet|unet3plus --out RUN_DIR [options]
       liverseg train --out RUN_DIR --resume [--epochs N] [--threads N] [--progress MODE]

Trains a network on a dataset folder and writes the run to RUN_DIR: best.pt and last.pt
checkpoints, steps.csv / epochs.csv / validation.csv curves, curves.png (blue: step loss,
red: validation Dice), split.json and train.json. Ctrl-C or SIGTERM saves RUN_DIR/resume.pt
(weights, Adam state, position) and exits with 130 / 143; --resume continues exactly.

Dataset layouts (detected):
  imagesTr/ + labelsTr/             Decathlon / nnU-Net (CASE_0000.nii.gz or CASE.nii.gz)
  images/ + masks/                  2D 8-bit grey pictures (.png/.jpg), same names; masks
                                    >= 128 are liver; split by volume id
                                    ([flipped_|mirrored_]VOLUME_SLICE.jpg)
  volume-N.nii + segmentation-N.nii LiTS (also in direct subfolders)
  CASE/ct.nii.gz + CASE/liver.nii.gz  a folder per case (what `liverseg phantom` writes);
                                    the mask may also be mask, segmentation, label(s)
  CASE.nii.gz + CASE_mask.nii.gz    pairs side by side (also _seg, _label(s), _liver)

Options:
  --arch unet|unet3plus      network (required)
  --variant plain|deepsup|cgm  UNet3+ variant (default plain; deepsup trains every head,
                             cgm also its "slice has liver" classifier)
  --padding same|seed        UNet convolutions (default same)
  --width N                  base width, channels of the first level (default 16)
  --epochs N                 (default 10)
  --steps-per-epoch N        (default: one pass over the training slices)
  --batch N                  slices per step (default 8)
  --lr X                     Adam learning rate (default 5e-4)
  --loss bce|bce+dice        (default bce: BCEWithLogits, as the seed)
  --augment                  flips, rotation +-15 deg, scale 0.85-1.15, intensity jitter
  --brightness-jitter F      with --augment: input shifted by up to +-F (default 0.05; the
                             input is the window mapped to [0,1], so 0.25 of a 160 HU window
                             is +-40 HU, e.g. for other contrast phases than the data's)
  --contrast-jitter F        with --augment: contrast scaled by 1 +- F (default 0.15)
  --frozen-batchnorm         BatchNorm uses and keeps its running statistics (no batch
                             statistics): for tiny batches; N processes then compute exactly
                             the gradient of one process on their combined batch
  --seed S                   network initialisation, split, order, augmentation (default 1)
  --liver-labels 1,2         mask values that are liver (default: every non-zero value;
                             TotalSegmentator maps: 5)
  --mask-name NAME           the mask's file name in every case folder
  --val-fraction F           share of cases (2D: volumes) held out (default 0.2)
  --window LOW,HIGH          HU window mapped to [0,1] (default -100,200). For a 2D dataset
                             it states which HU window its grey values show (default
                             -10,150, the estimate for liver2d); it goes into the checkpoint
  --spacing MM               in-plane pixel spacing of the network input (default 1.5)
  --size N                   network input side in pixels (default 256)
  --cache DIR                slice cache folder (default RUN_DIR/cache); reused while the
                             preparation settings and source files are unchanged
  --threads N                LibTorch threads (default: every core)
  --progress bar|json|none   bar on a terminal (default); json: one line per step/epoch
                             on stdout
  --resume                   continue the run in RUN_DIR (only --epochs, --threads,
                             --progress, --data and --cache may be given with it)

Data-parallel training (several processes, hosts or GPUs), configured as torchrun does:
  WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
Every rank runs the same command; they meet through c10d's TCPStore on MASTER_ADDR, average
gradients with Gloo, each trains on its share of every batch (--batch is per rank), and
rank 0 alone writes the run folder. --threads defaults to the cores / LOCAL_WORLD_SIZE.
Every rank must see the dataset; with --resume every rank must see RUN_DIR/resume.pt.
)";

// Options fixed when a run starts; --resume takes them from train.json.
const char* kFixedOptions[] = {"--arch", "--variant", "--padding", "--width", "--steps-per-epoch", "--batch", "--lr",
                               "--brightness-jitter", "--contrast-jitter",
                               "--loss", "--seed", "--liver-labels", "--mask-name", "--val-fraction", "--window",
                               "--spacing", "--size"};

enum class ProgressMode { Bar, Json, None };

ProgressMode parseProgressMode(const std::string& text) {
    if (text == "bar") return ProgressMode::Bar;
    if (text == "json") return ProgressMode::Json;
    if (text == "none") return ProgressMode::None;
    throw UsageError("train: --progress must be bar, json or none");
}

void printJsonLine(const json& line) { std::cout << line.dump() << std::endl; }

double peakResidentMiB() {
    struct rusage usage {};
    ::getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// Everything that defines a run; stored as train.json and inside resume.pt.
struct RunSettings {
    fs::path data;
    nn::ModelConfig config;
    nn::Preprocessing preprocessing;
    std::string liverLabels;  // "" = default
    std::string maskName;
    double validationFraction = 0.2;
    nn::TrainingOptions training;
    fs::path cache;
};

json toJson(const RunSettings& settings) {
    return {
        {"format", "liverseg-train-run"},
        {"data", settings.data.string()},
        {"config", settings.config},
        {"preprocessing", settings.preprocessing},
        {"liver_labels", settings.liverLabels},
        {"mask_name", settings.maskName},
        {"validation_fraction", settings.validationFraction},
        {"epochs", settings.training.epochs},
        {"steps_per_epoch", settings.training.stepsPerEpoch},
        {"batch", settings.training.batchSize},
        {"lr", settings.training.learningRate},
        {"loss", nn::toString(settings.training.loss)},
        {"augment", settings.training.augmentation.enabled},
        {"brightness_jitter", settings.training.augmentation.brightnessJitter},
        {"contrast_jitter", settings.training.augmentation.contrastJitter},
        {"frozen_batchnorm", settings.training.frozenBatchNorm},
        {"seed", settings.training.seed},
        {"cache", settings.cache.string()},
        {"world_size", settings.training.worldSize},
    };
}

RunSettings settingsFromJson(const json& stored, const fs::path& file) {
    try {
        RunSettings settings;
        if (stored.value("format", "") != "liverseg-train-run") throw core::InputError(file.string() + ": not a liverseg training run");
        settings.data = stored.at("data").get<std::string>();
        settings.config = stored.at("config").get<nn::ModelConfig>();
        settings.preprocessing = stored.at("preprocessing").get<nn::Preprocessing>();
        settings.liverLabels = stored.at("liver_labels").get<std::string>();
        settings.maskName = stored.at("mask_name").get<std::string>();
        settings.validationFraction = stored.at("validation_fraction").get<double>();
        settings.training.epochs = stored.at("epochs").get<int>();
        settings.training.stepsPerEpoch = stored.at("steps_per_epoch").get<std::int64_t>();
        settings.training.batchSize = stored.at("batch").get<int>();
        settings.training.learningRate = stored.at("lr").get<double>();
        settings.training.loss = nn::parseLossKind(stored.at("loss").get<std::string>());
        settings.training.augmentation.enabled = stored.at("augment").get<bool>();
        settings.training.augmentation.brightnessJitter =
            stored.value("brightness_jitter", nn::AugmentationOptions{}.brightnessJitter);
        settings.training.augmentation.contrastJitter = stored.value("contrast_jitter", nn::AugmentationOptions{}.contrastJitter);
        settings.training.frozenBatchNorm = stored.value("frozen_batchnorm", false);
        settings.training.seed = stored.at("seed").get<std::uint64_t>();
        settings.cache = stored.at("cache").get<std::string>();
        settings.training.worldSize = stored.value("world_size", 1);
        return settings;
    } catch (const json::exception& error) {
        throw core::InputError(file.string() + ": damaged run description (" + error.what() + ")");
    }
}

void writeJsonFile(const fs::path& file, const json& value) {
    core::writeAtomically(file, [&](const fs::path& temporary) {
        std::ofstream out(temporary, std::ios::trunc);
        out << value.dump(2) << "\n";
        out.flush();
        if (!out) throw core::InputError(file.string() + ": cannot write");
    });
}

json readJsonFile(const fs::path& file) {
    std::ifstream in(file);
    if (!in) throw core::InputError(file.string() + ": cannot read");
    try {
        return json::parse(in);
    } catch (const json::exception& error) {
        throw core::InputError(file.string() + ": not valid JSON (" + error.what() + ")");
    }
}

// Settings of a new run from the command line.
RunSettings settingsFromArguments(Arguments& arguments, const fs::path& out) {
    RunSettings settings;
    settings.data = arguments.required("--data");
    settings.config.architecture = nn::parseArchitecture(arguments.required("--arch"));
    if (const auto variant = arguments.value("--variant")) settings.config.variant = nn::parseUNet3PlusVariant(*variant);
    if (const auto padding = arguments.value("--padding")) settings.config.padding = nn::parseUNetPadding(*padding);
    settings.config.baseWidth = arguments.integer("--width", 16, 1, 512);
    settings.training.epochs = arguments.integer("--epochs", 10, 1, 100000);
    settings.training.stepsPerEpoch = arguments.integer("--steps-per-epoch", 0, 1, 100000000);
    settings.training.batchSize = arguments.integer("--batch", 8, 1, 4096);
    settings.training.learningRate = arguments.number("--lr", 5e-4);
    if (!(settings.training.learningRate > 0)) throw UsageError("train: --lr must be positive");
    settings.training.loss = nn::parseLossKind(arguments.value("--loss").value_or("bce"));
    settings.training.augmentation.enabled = arguments.flag("--augment");
    settings.training.frozenBatchNorm = arguments.flag("--frozen-batchnorm");
    settings.training.augmentation.brightnessJitter = arguments.number("--brightness-jitter", 0.05);
    settings.training.augmentation.contrastJitter = arguments.number("--contrast-jitter", 0.15);
    if (!(settings.training.augmentation.brightnessJitter >= 0 && settings.training.augmentation.brightnessJitter <= 1 &&
          settings.training.augmentation.contrastJitter >= 0 && settings.training.augmentation.contrastJitter < 1)) {
        throw UsageError("train: --brightness-jitter must be in [0, 1] and --contrast-jitter in [0, 1)");
    }
    settings.training.seed = std::uint64_t(arguments.integer("--seed", 1, 0, 2147483647));
    settings.liverLabels = arguments.value("--liver-labels").value_or("");
    if (!settings.liverLabels.empty()) core::LiverLabels::parse(settings.liverLabels);  // fail early
    settings.maskName = arguments.value("--mask-name").value_or("");
    settings.validationFraction = arguments.number("--val-fraction", 0.2);
    if (!(settings.validationFraction >= 0 && settings.validationFraction < 1)) {
        throw UsageError("train: --val-fraction must be at least 0 and below 1");
    }
    if (const auto window = arguments.numberList("--window", 2)) {
        settings.preprocessing.windowLowHu = (*window)[0];
        settings.preprocessing.windowHighHu = (*window)[1];
    } else {
        settings.preprocessing.windowLowHu = std::nan("");  // decided once the layout is known
    }
    settings.preprocessing.pixelSpacingMm = arguments.number("--spacing", 1.5);
    settings.preprocessing.inputSize = arguments.integer("--size", 256, 16, 4096);
    settings.preprocessing.sliceContext = settings.config.inputChannels;
    settings.cache = arguments.value("--cache").value_or((out / "cache").string());
    settings.config.validate();
    return settings;
}

std::string describeData(const core::Dataset& dataset, const core::DatasetSplit& split, const std::string& liverLabels) {
    std::ostringstream out;
    out << fs::absolute(dataset.root).lexically_normal().string() << " (" << core::toString(dataset.layout) << ", "
        << split.training.size() << " training / " << split.validation.size() << " validation "
        << (dataset.isTwoDimensional() ? "pictures, split by volume id" : "cases") << ", split seed " << split.seed
        << ", liver labels " << (liverLabels.empty() ? "non-zero" : liverLabels) << ")";
    return out.str();
}

std::string describeTraining(const RunSettings& settings) {
    std::ostringstream out;
    out << "liverseg train: Adam lr " << settings.training.learningRate << ", loss " << nn::toString(settings.training.loss)
        << ", batch " << settings.training.batchSize << " per process x " << settings.training.worldSize
        << ", augmentation ";
    const nn::AugmentationOptions& augmentation = settings.training.augmentation;
    if (augmentation.enabled) {
        out << "on (brightness +-" << augmentation.brightnessJitter << ", contrast +-" << augmentation.contrastJitter << ")";
    } else {
        out << "off";
    }
    out << ", seed " << settings.training.seed;
    return out.str();
}

// The HU window the network input shows, when --window was not given.
void chooseWindow(RunSettings& settings, const core::Dataset& dataset) {
    if (!std::isnan(settings.preprocessing.windowLowHu)) return;
    if (dataset.isTwoDimensional()) {
        settings.preprocessing.windowLowHu = -10;
        settings.preprocessing.windowHighHu = 150;
        std::cerr << "liverseg train: 2D pictures: grey 0-255 taken as the HU window [-10, 150] (set --window if "
                     "yours differs); it is recorded in the checkpoints\n";
    } else {
        settings.preprocessing.windowLowHu = nn::Preprocessing{}.windowLowHu;
        settings.preprocessing.windowHighHu = nn::Preprocessing{}.windowHighHu;
    }
}

void prepareNewRunFolder(const fs::path& out, const fs::path& runFile) {
    if (fs::exists(runFile)) {
        throw core::InputError(out.string() + ": already holds a training run; continue it with --resume or choose another --out");
    }
    std::error_code error;
    fs::create_directories(out, error);
    if (!fs::is_directory(out)) throw core::InputError(out.string() + ": cannot create the run folder");
}

// The slice cache for this run, built or reused; null when a stop signal cancelled it.
std::shared_ptr<const core::SliceCache> prepareSliceCache(const RunSettings& settings, const core::Dataset& dataset,
                                                          ProgressMode progressMode) {
    const core::LiverLabels liverLabels =
        settings.liverLabels.empty() ? core::LiverLabels() : core::LiverLabels::parse(settings.liverLabels);
    TerminalProgress bar("cache");
    core::SliceCacheProgress progress;
    progress.cancelled = [] { return StopSignals::requested(); };
    progress.onCase = [&](std::size_t done, std::size_t total, const core::DatasetCase& item, bool built) {
        if (progressMode == ProgressMode::Bar) bar.update(done, total);
        if (progressMode == ProgressMode::Json) {
            printJsonLine({{"type", "cache"}, {"done", done}, {"total", total}, {"case", item.id}, {"built", built}});
        }
    };
    try {
        auto cache = std::make_shared<core::SliceCache>(dataset, nn::slicePreparationFor(settings.preprocessing, liverLabels),
                                                        settings.cache, progress);
        bar.finish();
        return cache;
    } catch (const core::Cancelled&) {
        bar.finish();
        return nullptr;
    }
}

// Data-parallel ranks must end with bitwise identical weights; a difference means a rank
// trained on something else (a different dataset or build) and the run is not what it claims.
void requireIdenticalWeights(nn::DistributedContext& distributed, nn::SegmentationNetworkImpl& network) {
    double sum = 0, weighted = 0, index = 0;
    std::vector<torch::Tensor> tensors;
    for (const auto& item : network.named_parameters()) tensors.push_back(item.value());
    for (const auto& item : network.named_buffers()) tensors.push_back(item.value());
    for (const torch::Tensor& tensor : tensors) {
        const torch::Tensor values = tensor.detach().to(torch::kDouble);
        sum += values.sum().item<double>();
        weighted += (values * ++index).abs().sum().item<double>();
    }
    std::vector<double> mine(std::size_t(2 * distributed.worldSize()), 0.0);
    mine[std::size_t(2 * distributed.rank())] = sum;
    mine[std::size_t(2 * distributed.rank() + 1)] = weighted;
    const std::vector<double> all = distributed.allReduceSum(mine);
    for (int rank = 1; rank < distributed.worldSize(); ++rank) {
        if (all[std::size_t(2 * rank)] != all[0] || all[std::size_t(2 * rank + 1)] != all[1]) {
            throw std::runtime_error("rank " + std::to_string(rank) + " ended with weights different from rank 0's");
        }
    }
    if (distributed.isMain()) {
        std::cerr << "liverseg train: all " << distributed.worldSize() << " ranks hold identical weights (checksum "
                  << std::setprecision(17) << all[0] << ")\n";
    }
}

}  // namespace

int runTrain(Arguments& arguments) {
    if (arguments.wantsHelp()) {
        std::cout << kHelp;
        return 0;
    }
    const fs::path out = arguments.required("--out");
    const bool resume = arguments.flag("--resume");
    const ProgressMode progressMode = parseProgressMode(arguments.value("--progress").value_or("bar"));
    const int threads = arguments.integer("--threads", 0, 0, 1024);
    const fs::path runFile = out / "train.json";

    RunSettings settings;
    if (resume) {
        for (const char* name : kFixedOptions) {
            if (arguments.value(name)) throw UsageError(std::string("train: ") + name + " cannot change when resuming; it is kept from " + runFile.string());
        }
        if (arguments.flag("--augment") || arguments.flag("--frozen-batchnorm")) {
            throw UsageError("train: --augment and --frozen-batchnorm cannot change when resuming");
        }
        if (!fs::is_regular_file(runFile)) throw core::InputError(out.string() + ": no training run to resume (no train.json)");
        settings = settingsFromJson(readJsonFile(runFile), runFile);
        if (const auto data = arguments.value("--data")) settings.data = *data;
        if (const auto cache = arguments.value("--cache")) settings.cache = *cache;
        settings.training.epochs = arguments.integer("--epochs", settings.training.epochs, 1, 100000);
    } else {
        settings = settingsFromArguments(arguments, out);
    }
    arguments.positionals(0, 0);

    // --- data ---
    core::DatasetOptions datasetOptions;
    datasetOptions.caseMaskName = settings.maskName;
    const core::Dataset dataset = core::openDataset(settings.data, datasetOptions);
    chooseWindow(settings, dataset);
    settings.preprocessing.validate();
    nn::outputSize(settings.config, {settings.preprocessing.inputSize, settings.preprocessing.inputSize});
    if (!resume) prepareNewRunFolder(out, runFile);

    // --- the other processes (a no-op for one) ---
    // After the checks above: rank 0 writes train.json only once every rank has passed them.
    const auto distributed = nn::DistributedContext::fromEnvironment();
    if (resume && settings.training.worldSize != distributed->worldSize()) {
        throw core::InputError(out.string() + ": this run was trained by " + std::to_string(settings.training.worldSize) +
                               " process(es); resume it with WORLD_SIZE=" + std::to_string(settings.training.worldSize) +
                               " (the batch order depends on it)");
    }
    settings.training.rank = distributed->rank();
    settings.training.worldSize = distributed->worldSize();
    const bool isMain = distributed->isMain();
    std::ostream silent(nullptr);
    std::ostream& log = isMain ? std::cerr : silent;  // rank 0 alone reports
    const ProgressMode progress = isMain ? progressMode : ProgressMode::None;
    if (distributed->isDistributed()) {
        log << "liverseg train: " << distributed->worldSize() << " processes (" << distributed->backendName() << ")\n";
    }

    const core::DatasetSplit split = resume ? nn::TrainingRunFolder::readSplit(out, dataset)
                                            : core::splitByGroup(dataset, settings.validationFraction, settings.training.seed);
    log << "liverseg train: " << describeData(dataset, split, settings.liverLabels) << "\n";
    for (const auto& note : dataset.notes) log << "  note: " << note << "\n";
    if (split.validation.empty()) log << "  note: no validation cases; best.pt follows the training loss\n";

    StopSignals stopSignals;
    const auto interruptedExit = [&](const std::string& what) {
        log << "\nliverseg train: interrupted (" << signalName(StopSignals::signal()) << ") " << what << "\n";
        if (progress == ProgressMode::Json) printJsonLine({{"type", "stopped"}, {"signal", StopSignals::signal()}});
        return 128 + std::max(StopSignals::signal(), 0);
    };

    // --- slice cache ---
    // Rank 0 prepares it first; ranks sharing its folder then reuse it instead of racing.
    std::shared_ptr<const core::SliceCache> cache;
    if (isMain) cache = prepareSliceCache(settings, dataset, progress);
    distributed->barrier();
    if (!isMain && !StopSignals::requested()) cache = prepareSliceCache(settings, dataset, progress);
    if (distributed->anyRank(cache == nullptr)) {
        return interruptedExit("while preparing the slice cache; finished cases are kept, run the command again");
    }
    log << "liverseg train: slice cache " << settings.cache.string() << ": " << cache->totalSlices() << " slices of "
        << cache->side() << "x" << cache->side() << ", " << cache->builtCount() << " cases prepared, "
        << cache->reusedCount() << " reused\n";

    // --- network and trainer ---
    const int threadsInUse =
        nn::setIntraOpThreads(threads > 0 ? threads : std::max(1, nn::availableCores() / distributed->localWorldSize()));
    torch::manual_seed(settings.training.seed);
    nn::SegmentationNetwork network = nn::makeNetwork(settings.config);
    nn::CheckpointInfo info;
    info.config = settings.config;
    info.preprocessing = settings.preprocessing;
    info.training.data = describeData(dataset, split, settings.liverLabels);
    info.training.notes = describeTraining(settings);
    info.validate();

    nn::Trainer trainer(network, nn::makeTrainingData(cache, dataset, split), settings.training);
    nn::TrainingRunFolder folder(out, info);
    json extra = toJson(settings);
    // A run killed before it saved any state (e.g. by SIGKILL in its first epoch) starts over
    // with its stored settings and split.
    const bool hasState = resume && fs::is_regular_file(folder.resumeFile());
    if (hasState) {
        trainer.loadState(folder.resumeFile());
        if (trainer.epoch() < settings.training.epochs) {
            log << "liverseg train: resuming at epoch " << trainer.epoch() + 1 << ", step " << trainer.stepInEpoch() << "/"
                << trainer.stepsPerEpoch() << "\n";
        }
    } else if (resume) {
        log << "liverseg train: " << folder.resumeFile().string() << " was never saved; starting the run over\n";
    }
    distributed->broadcastParameters(*network);
    if (isMain) {
        writeJsonFile(runFile, extra);  // on resume, --epochs may have changed
        if (!resume) nn::TrainingRunFolder::writeSplit(out, dataset, split);
        folder.startLogs(trainer, hasState);
    }
    log << "liverseg train: " << settings.config.describe() << ", " << network->parameterCount() << " parameters, "
        << trainer.stepsPerEpoch() << " steps per epoch, " << threadsInUse << " thread(s)"
        << (distributed->isDistributed() ? " per process" : "") << "\n";
    if (trainer.epoch() >= settings.training.epochs) {
        log << "liverseg train: the run already finished its " << settings.training.epochs
            << " epochs; give --epochs N with --resume to train longer\n";
        return 0;
    }

    // --- training ---
    std::unique_ptr<TerminalProgress> bar;
    nn::TrainerHooks hooks;
    // Every rank stops at the same step when any of them is told to.
    hooks.stopRequested = [&] { return distributed->anyRank(StopSignals::requested()); };
    if (distributed->isDistributed()) {
        hooks.afterBackward = [&](nn::SegmentationNetworkImpl& trained) {
            distributed->allReduceGradients(trained);
            distributed->broadcastBuffers(trained);  // every rank keeps rank 0's BatchNorm statistics
        };
    }
    hooks.onStep = [&](nn::StepReport report) {
        report.loss = distributed->allReduceMean(report.loss);
        report.slicesPerSecond *= distributed->worldSize();
        if (!isMain) return;
        folder.logStep(report);
        if (progress == ProgressMode::Json) {
            printJsonLine({{"type", "step"}, {"epoch", report.epoch}, {"epochs", report.epochs}, {"step", report.stepInEpoch},
                           {"steps", report.stepsPerEpoch}, {"global_step", report.globalStep}, {"loss", report.loss},
                           {"seconds", report.seconds}, {"slices_per_second", report.slicesPerSecond}});
        } else if (progress == ProgressMode::Bar) {
            if (!bar) bar = std::make_unique<TerminalProgress>("epoch " + std::to_string(report.epoch) + "/" + std::to_string(report.epochs));
            bar->update(std::size_t(report.stepInEpoch), std::size_t(report.stepsPerEpoch));
        }
    };
    hooks.onEpoch = [&](nn::EpochReport report) {
        report.trainingLoss = distributed->allReduceMean(report.trainingLoss);
        if (!isMain) return;
        if (bar) bar->finish();
        bar.reset();
        folder.finishEpoch(report, trainer);
        folder.saveResume(trainer, extra);
        if (progress == ProgressMode::Json) {
            json cases = json::array();
            for (const auto& item : report.cases) cases.push_back({{"case", item.name}, {"dice", item.dice}});
            printJsonLine({{"type", "epoch"}, {"epoch", report.epoch}, {"epochs", report.epochs},
                           {"global_step", report.globalStep}, {"training_loss", report.trainingLoss},
                           {"validation_dice", report.validationDice ? json(*report.validationDice) : json()},
                           {"best", report.best}, {"cases", cases}, {"seconds", report.seconds}});
        }
        std::cerr << "epoch " << report.epoch << "/" << report.epochs << ": loss " << fixed(report.trainingLoss, 4);
        if (report.validationDice) std::cerr << ", validation Dice " << fixed(*report.validationDice, 4);
        std::cerr << (report.best ? " (best)" : "") << ", " << fixed(report.seconds, 1) << " s\n";
    };

    const nn::TrainingEnd end = trainer.run(hooks);
    if (bar) bar->finish();
    if (end == nn::TrainingEnd::Stopped) {
        if (isMain) folder.saveInterrupted(trainer, extra);
        return interruptedExit("at epoch " + std::to_string(trainer.epoch() + 1) + ", step " +
                               std::to_string(trainer.stepInEpoch()) + "/" + std::to_string(trainer.stepsPerEpoch()) +
                               "; saved " + folder.resumeFile().string() + " and " + folder.lastCheckpoint().string() +
                               "; continue with: liverseg train --out " + out.string() + " --resume");
    }
    if (distributed->isDistributed()) requireIdenticalWeights(*distributed, *network);
    const auto best = trainer.bestValidationDice();
    log << "liverseg train: done, " << settings.training.epochs << " epochs";
    if (best) log << ", best validation Dice " << fixed(*best, 4);
    log << "; " << folder.bestCheckpoint().string() << ", " << folder.lastCheckpoint().string() << "; peak memory "
        << fixed(peakResidentMiB(), 0) << " MiB\n";
    if (progress == ProgressMode::Json) {
        printJsonLine({{"type", "done"}, {"best_validation_dice", best ? json(*best) : json()},
                       {"best", folder.bestCheckpoint().string()}, {"last", folder.lastCheckpoint().string()},
                       {"peak_resident_mib", peakResidentMiB()}});
    }
    return 0;
}

}  // namespace liverseg::app
