#include "app/Commands.h"
#include "app/TerminalProgress.h"
#include "core/AtomicFile.h"
#include "core/Dataset.h"
#include "core/Errors.h"
#include "core/SliceCache.h"
#include "nn/Networks.h"
#include "nn/Threads.h"
#include "nn/Trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

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
)";

// Options fixed when a run starts; --resume takes them from train.json.
const char* kFixedOptions[] = {"--arch", "--variant", "--padding", "--width", "--steps-per-epoch", "--batch", "--lr",
                               "--loss", "--seed", "--liver-labels", "--mask-name", "--val-fraction", "--window",
                               "--spacing", "--size"};

std::atomic<int> gStopSignal{0};

extern "C" void onStopSignal(int signal) {
    if (gStopSignal.exchange(signal) != 0) {
        // A second signal: leave now, without saving.
        const char message[] = "\nliverseg train: interrupted again; exiting without saving\n";
        [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message, sizeof message - 1);
        ::_exit(128 + signal);
    }
}

// Installs the stop handlers for SIGINT and SIGTERM while it lives.
class StopSignals {
public:
    StopSignals() {
        gStopSignal = 0;
        struct sigaction action {};
        action.sa_handler = onStopSignal;
        sigemptyset(&action.sa_mask);
        ::sigaction(SIGINT, &action, &previousInt_);
        ::sigaction(SIGTERM, &action, &previousTerm_);
    }
    ~StopSignals() {
        ::sigaction(SIGINT, &previousInt_, nullptr);
        ::sigaction(SIGTERM, &previousTerm_, nullptr);
    }
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    static bool requested() { return gStopSignal.load() != 0; }
    static int signal() { return gStopSignal.load(); }

private:
    struct sigaction previousInt_ {};
    struct sigaction previousTerm_ {};
};

std::string signalName(int signal) { return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : std::to_string(signal); }

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

std::string fixed(double value, int digits) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(digits) << value;
    return out.str();
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
        {"seed", settings.training.seed},
        {"cache", settings.cache.string()},
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
        settings.training.seed = stored.at("seed").get<std::uint64_t>();
        settings.cache = stored.at("cache").get<std::string>();
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
        << ", batch " << settings.training.batchSize << ", augmentation " << (settings.training.augmentation.enabled ? "on" : "off")
        << ", seed " << settings.training.seed;
    return out.str();
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
        if (arguments.flag("--augment")) throw UsageError("train: --augment cannot change when resuming");
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
    if (std::isnan(settings.preprocessing.windowLowHu)) {
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
    settings.preprocessing.validate();
    nn::outputSize(settings.config, {settings.preprocessing.inputSize, settings.preprocessing.inputSize});

    if (!resume) {
        if (fs::exists(runFile)) {
            throw core::InputError(out.string() + ": already holds a training run; continue it with --resume or choose another --out");
        }
        std::error_code error;
        fs::create_directories(out, error);
        if (!fs::is_directory(out)) throw core::InputError(out.string() + ": cannot create the run folder");
    }
    const core::DatasetSplit split = resume ? nn::TrainingRunFolder::readSplit(out, dataset)
                                            : core::splitByGroup(dataset, settings.validationFraction, settings.training.seed);
    std::cerr << "liverseg train: " << describeData(dataset, split, settings.liverLabels) << "\n";
    for (const auto& note : dataset.notes) std::cerr << "  note: " << note << "\n";
    if (split.validation.empty()) std::cerr << "  note: no validation cases; best.pt follows the training loss\n";

    StopSignals stopSignals;
    const auto interruptedExit = [&](const std::string& what) {
        std::cerr << "\nliverseg train: interrupted (" << signalName(StopSignals::signal()) << ") " << what << "\n";
        if (progressMode == ProgressMode::Json) printJsonLine({{"type", "stopped"}, {"signal", StopSignals::signal()}});
        return 128 + StopSignals::signal();
    };

    // --- slice cache ---
    const core::LiverLabels liverLabels =
        settings.liverLabels.empty() ? core::LiverLabels() : core::LiverLabels::parse(settings.liverLabels);
    std::shared_ptr<const core::SliceCache> cache;
    {
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
            cache = std::make_shared<core::SliceCache>(dataset, nn::slicePreparationFor(settings.preprocessing, liverLabels),
                                                       settings.cache, progress);
        } catch (const core::Cancelled&) {
            bar.finish();
            return interruptedExit("while preparing the slice cache; finished cases are kept, run the command again");
        }
        bar.finish();
    }
    std::cerr << "liverseg train: slice cache " << settings.cache.string() << ": " << cache->totalSlices() << " slices of "
              << cache->side() << "x" << cache->side() << ", " << cache->builtCount() << " cases prepared, "
              << cache->reusedCount() << " reused\n";

    // --- network and trainer ---
    const int threadsInUse = nn::setIntraOpThreads(threads);
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
            std::cerr << "liverseg train: resuming at epoch " << trainer.epoch() + 1 << ", step " << trainer.stepInEpoch()
                      << "/" << trainer.stepsPerEpoch() << "\n";
        }
    } else if (resume) {
        std::cerr << "liverseg train: " << folder.resumeFile().string() << " was never saved; starting the run over\n";
    }
    writeJsonFile(runFile, extra);  // on resume, --epochs may have changed
    if (!resume) nn::TrainingRunFolder::writeSplit(out, dataset, split);
    folder.startLogs(trainer, hasState);
    std::cerr << "liverseg train: " << settings.config.describe() << ", " << network->parameterCount() << " parameters, "
              << trainer.stepsPerEpoch() << " steps per epoch, " << threadsInUse << " thread(s)\n";
    if (trainer.epoch() >= settings.training.epochs) {
        std::cerr << "liverseg train: the run already finished its " << settings.training.epochs
                  << " epochs; give --epochs N with --resume to train longer\n";
        return 0;
    }

    // --- training ---
    std::unique_ptr<TerminalProgress> bar;
    nn::TrainerHooks hooks;
    hooks.stopRequested = [] { return StopSignals::requested(); };
    hooks.onStep = [&](const nn::StepReport& report) {
        folder.logStep(report);
        if (progressMode == ProgressMode::Json) {
            printJsonLine({{"type", "step"}, {"epoch", report.epoch}, {"epochs", report.epochs}, {"step", report.stepInEpoch},
                           {"steps", report.stepsPerEpoch}, {"global_step", report.globalStep}, {"loss", report.loss},
                           {"seconds", report.seconds}, {"slices_per_second", report.slicesPerSecond}});
        } else if (progressMode == ProgressMode::Bar) {
            if (!bar) bar = std::make_unique<TerminalProgress>("epoch " + std::to_string(report.epoch) + "/" + std::to_string(report.epochs));
            bar->update(std::size_t(report.stepInEpoch), std::size_t(report.stepsPerEpoch));
        }
    };
    hooks.onEpoch = [&](const nn::EpochReport& report) {
        if (bar) bar->finish();
        bar.reset();
        folder.finishEpoch(report, trainer);
        folder.saveResume(trainer, extra);
        if (progressMode == ProgressMode::Json) {
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
        folder.saveInterrupted(trainer, extra);
        return interruptedExit("at epoch " + std::to_string(trainer.epoch() + 1) + ", step " +
                               std::to_string(trainer.stepInEpoch()) + "/" + std::to_string(trainer.stepsPerEpoch()) +
                               "; saved " + folder.resumeFile().string() + " and " + folder.lastCheckpoint().string() +
                               "; continue with: liverseg train --out " + out.string() + " --resume");
    }
    const auto best = trainer.bestValidationDice();
    std::cerr << "liverseg train: done, " << settings.training.epochs << " epochs";
    if (best) std::cerr << ", best validation Dice " << fixed(*best, 4);
    std::cerr << "; " << folder.bestCheckpoint().string() << ", " << folder.lastCheckpoint().string() << "; peak memory "
              << fixed(peakResidentMiB(), 0) << " MiB\n";
    if (progressMode == ProgressMode::Json) {
        printJsonLine({{"type", "done"}, {"best_validation_dice", best ? json(*best) : json()},
                       {"best", folder.bestCheckpoint().string()}, {"last", folder.lastCheckpoint().string()},
                       {"peak_resident_mib", peakResidentMiB()}});
    }
    return 0;
}

}  // namespace liverseg::app
