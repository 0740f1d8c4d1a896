#include "app/Commands.h"
#include "app/TerminalProgress.h"
#include "app/StopSignals.h"
#include "core/Dataset.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/SliceCache.h"
#include "nn/Checkpoint.h"
#include "nn/Threads.h"
#include "nn/Trainer.h"

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

namespace liverseg::app {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const char* kHelp = R"(usage: liverseg finetune --weights CKPT --data STORE_OR_DIR --out CKPT2 [options]

Continues training a checkpoint on corrected cases and writes a new checkpoint. The parent
is never overwritten, and CKPT2 records it (lineage: the parent's path and fingerprint, and
what the parent itself was trained on). By default it trains on the slices the person
edited and their neighbours, plus a replay sample of other slices so that the network does
not forget what it already did well. It reports the Dice on held-out corrected cases
before and after.

The corrected-cases store: a folder per case holding
  ct.nii.gz          the CT
  liver.nii.gz       the corrected liver mask
  prediction.nii.gz  (optional) the network's mask before the corrections: the slices
                     where the two differ are the edited slices. Without it, every slice of
                     the case counts as edited.
Any dataset folder `liverseg train` reads works too (every slice counts as edited).

Options:
  --epochs N            passes over the chosen slices (default 5)
  --freeze-encoder      train the decoder only; the encoder's weights and BatchNorm
                        statistics stay the parent's
  --only-edited-slices  no replay sample: the edited slices and their neighbours only
  --neighbours N        slices either side of an edited slice trained on too (default 2)
  --replay F            replay slices per edited or neighbour slice (default 0.5)
  --lr X                Adam learning rate (default 1e-4, below train's 5e-4: a small step
                        away from the parent)
  --batch N             slices per step (default 4)
  --augment             flips, rotation, scale, intensity jitter as in train
  --val-fraction F      share of cases held out for the before/after Dice (default 0.2;
                        with a single case its own slices are scored, and the report says so)
  --seed S              split, replay sample, order, augmentation (default 1)
  --liver-labels 1,2    mask values that are liver (default: non-zero)
  --mask-name NAME      the mask's file name in every case folder
  --cache DIR           slice cache folder (default: a temporary one, removed afterwards)
  --threads N           LibTorch threads (default: every core)
  --overwrite           replace an existing CKPT2 (never the parent)
Ctrl-C or SIGTERM stops it without writing anything.
)";

struct FinetuneSettings {
    fs::path parent;
    fs::path data;
    fs::path out;
    bool freezeEncoder = false;
    bool onlyEdited = false;
    int neighbours = 2;
    double replay = 0.5;
    double validationFraction = 0.2;
    std::string liverLabels;
    std::string maskName;
    std::optional<fs::path> cache;
    bool overwrite = false;
    nn::TrainingOptions training;
};

FinetuneSettings settingsFromArguments(Arguments& arguments) {
    FinetuneSettings settings;
    settings.parent = arguments.required("--weights");
    settings.data = arguments.required("--data");
    settings.out = arguments.required("--out");
    settings.training.epochs = arguments.integer("--epochs", 5, 1, 100000);
    settings.freezeEncoder = arguments.flag("--freeze-encoder");
    settings.onlyEdited = arguments.flag("--only-edited-slices");
    settings.neighbours = arguments.integer("--neighbours", 2, 0, 1000);
    settings.replay = arguments.number("--replay", 0.5);
    if (!(settings.replay >= 0 && settings.replay <= 100)) throw UsageError("finetune: --replay must be from 0 to 100");
    settings.validationFraction = arguments.number("--val-fraction", 0.2);
    if (!(settings.validationFraction >= 0 && settings.validationFraction < 1)) {
        throw UsageError("finetune: --val-fraction must be at least 0 and below 1");
    }
    settings.liverLabels = arguments.value("--liver-labels").value_or("");
    if (!settings.liverLabels.empty()) core::LiverLabels::parse(settings.liverLabels);
    settings.maskName = arguments.value("--mask-name").value_or("");
    if (const auto cache = arguments.value("--cache")) settings.cache = fs::path(*cache);
    settings.overwrite = arguments.flag("--overwrite");
    settings.training.batchSize = arguments.integer("--batch", 4, 1, 4096);
    settings.training.learningRate = arguments.number("--lr", 1e-4);
    if (!(settings.training.learningRate > 0)) throw UsageError("finetune: --lr must be positive");
    settings.training.augmentation.enabled = arguments.flag("--augment");
    settings.training.seed = std::uint64_t(arguments.integer("--seed", 1, 0, 2147483647));
    if (settings.freezeEncoder) settings.training.frozenPrefixes = {"dconv.", "down"};
    settings.training.validateEveryEpoch = false;  // before and after are what it reports
    return settings;
}

// The output must not be the parent, and is only replaced when asked.
void requireSafeOutput(const FinetuneSettings& settings) {
    std::error_code error;
    if (fs::exists(settings.out) && fs::equivalent(settings.out, settings.parent, error)) {
        throw core::InputError(settings.out.string() + ": is the parent checkpoint; fine-tuning never overwrites its parent");
    }
    if (fs::exists(settings.out) && !settings.overwrite) {
        throw core::InputError(settings.out.string() + ": exists; choose another --out or give --overwrite");
    }
    const fs::path folder = settings.out.parent_path().empty() ? fs::path(".") : settings.out.parent_path();
    if (!fs::is_directory(folder)) throw core::InputError(settings.out.string() + ": folder " + folder.string() + " does not exist");
}

// A fingerprint of the parent file (FNV-1a 64 over its bytes), for the lineage.
std::string fingerprint(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::uint64_t hash = 1469598103934665603ull;
    char buffer[1 << 16];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        for (std::streamsize i = 0; i < in.gcount(); ++i) {
            hash = (hash ^ std::uint8_t(buffer[i])) * 1099511628211ull;
        }
    }
    std::ostringstream out;
    out << "fnv1a64 " << std::hex << std::setw(16) << std::setfill('0') << hash << std::dec << ", "
        << fs::file_size(file) << " bytes";
    return out.str();
}

// Slices (in the cache's radiological order) where the corrected mask differs from the
// network's original prediction; nullopt when the case has no prediction.nii.gz.
std::optional<std::set<std::uint32_t>> editedSlices(const core::DatasetCase& item, const core::LiverLabels& labels) {
    const fs::path original = item.mask.parent_path() / "prediction.nii.gz";
    if (item.mask.filename() == original.filename() || !fs::is_regular_file(original)) return std::nullopt;
    const core::LabelMap corrected = core::readLabelMap(item.mask);
    const core::LabelMap predicted = core::readLabelMapOnGrid(original, corrected.geometry());
    const auto view = core::axialView(corrected.geometry().direction);
    const auto [nx, ny, nz] = corrected.size();
    const std::size_t plane = nx * ny;
    std::set<std::uint32_t> edited;
    for (std::size_t z = 0; z < nz; ++z) {
        const std::uint8_t* a = corrected.voxels().data() + z * plane;
        const std::uint8_t* b = predicted.voxels().data() + z * plane;
        for (std::size_t i = 0; i < plane; ++i) {
            if (labels.isLiver(a[i]) != (b[i] != 0)) {
                edited.insert(std::uint32_t(view && view->flipSlices ? nz - 1 - z : z));
                break;
            }
        }
    }
    return edited;
}

struct SliceChoice {
    std::vector<nn::SliceRef> slices;
    std::size_t edited = 0;
    std::size_t neighbours = 0;
    std::size_t replay = 0;
    std::size_t casesWithoutRecord = 0;
};

// The edited slices of the training cases, their neighbours, and a seeded replay sample
// of the remaining slices.
SliceChoice chooseSlices(const FinetuneSettings& settings, const core::Dataset& dataset, const core::SliceCache& cache,
                         const core::DatasetSplit& split) {
    const core::LiverLabels labels =
        settings.liverLabels.empty() ? core::LiverLabels() : core::LiverLabels::parse(settings.liverLabels);
    SliceChoice choice;
    std::vector<nn::SliceRef> rest;
    for (const std::size_t index : split.training) {
        const std::uint32_t count = std::uint32_t(cache.caseAt(index).sliceCount());
        std::optional<std::set<std::uint32_t>> edited;
        if (!dataset.isTwoDimensional()) edited = editedSlices(dataset.cases[index], labels);
        if (!edited) {
            ++choice.casesWithoutRecord;
            edited.emplace();
            for (std::uint32_t z = 0; z < count; ++z) edited->insert(z);
        }
        std::set<std::uint32_t> near;
        for (const std::uint32_t z : *edited) {
            for (int d = -settings.neighbours; d <= settings.neighbours; ++d) {
                const std::int64_t n = std::int64_t(z) + d;
                if (n >= 0 && n < std::int64_t(count) && !edited->count(std::uint32_t(n))) near.insert(std::uint32_t(n));
            }
        }
        for (std::uint32_t z = 0; z < count; ++z) {
            const nn::SliceRef ref{std::uint32_t(index), z};
            if (edited->count(z) || near.count(z)) choice.slices.push_back(ref);
            else rest.push_back(ref);
        }
        choice.edited += edited->size();
        choice.neighbours += near.size();
    }
    if (!settings.onlyEdited && !rest.empty()) {
        std::mt19937_64 random(settings.training.seed * 0x9E3779B97F4A7C15ull + 17);
        std::shuffle(rest.begin(), rest.end(), random);
        choice.replay = std::min(rest.size(), std::size_t(std::llround(settings.replay * double(choice.slices.size()))));
        choice.slices.insert(choice.slices.end(), rest.begin(), rest.begin() + std::ptrdiff_t(choice.replay));
    }
    return choice;
}

double meanDice(const std::vector<nn::CaseDice>& cases) {
    double sum = 0;
    for (const auto& item : cases) sum += item.dice;
    return cases.empty() ? 0 : sum / double(cases.size());
}

// A cache folder that is removed when the command ends, unless the user named one.
struct CacheFolder {
    fs::path path;
    bool temporary = false;
    ~CacheFolder() {
        std::error_code ignored;
        if (temporary) fs::remove_all(path, ignored);
    }
};

}  // namespace

int runFinetune(Arguments& arguments) {
    if (arguments.wantsHelp()) {
        std::cout << kHelp;
        return 0;
    }
    FinetuneSettings settings = settingsFromArguments(arguments);
    const int threads = arguments.integer("--threads", 0, 0, 1024);
    arguments.positionals(0, 0);
    requireSafeOutput(settings);
    const auto started = Clock::now();

    nn::LoadedModel parent = nn::loadCheckpoint(settings.parent);
    core::DatasetOptions datasetOptions;
    datasetOptions.caseMaskName = settings.maskName;
    const core::Dataset dataset = core::openDataset(settings.data, datasetOptions);
    core::DatasetSplit split = core::splitByGroup(dataset, settings.validationFraction, settings.training.seed);
    const bool heldOut = !split.validation.empty();
    if (!heldOut) split.validation = split.training;  // a single case: score its own slices

    StopSignals stopSignals;
    const auto stoppedExit = [] {
        std::cerr << "\nliverseg finetune: interrupted (" << signalName(StopSignals::signal())
                  << "); nothing was written\n";
        return 128 + StopSignals::signal();
    };

    const core::LiverLabels labels =
        settings.liverLabels.empty() ? core::LiverLabels() : core::LiverLabels::parse(settings.liverLabels);
    CacheFolder cacheFolder{settings.cache.value_or(fs::temp_directory_path() /
                                                    ("liverseg-finetune-" + std::to_string(::getpid()))),
                            !settings.cache};
    core::SliceCacheProgress cacheProgress;
    cacheProgress.cancelled = [] { return StopSignals::requested(); };
    std::shared_ptr<const core::SliceCache> cache;
    try {
        cache = std::make_shared<core::SliceCache>(
            dataset, nn::slicePreparationFor(parent.info.preprocessing, labels), cacheFolder.path, cacheProgress);
    } catch (const core::Cancelled&) {
        return stoppedExit();
    }

    const SliceChoice choice = chooseSlices(settings, dataset, *cache, split);
    if (choice.edited == 0) {
        throw core::InputError(settings.data.string() +
                               ": no edited slices (every training case's mask equals its prediction.nii.gz); nothing "
                               "to fine-tune on");
    }
    nn::TrainingData data = nn::makeTrainingData(cache, dataset, split);
    data.trainingSlices = choice.slices;
    std::cerr << "liverseg finetune: " << parent.info.config.describe() << " from " << settings.parent.string() << "\n"
              << "  training on " << choice.slices.size() << " slices of " << split.training.size() << " case(s): "
              << choice.edited << " edited, " << choice.neighbours << " neighbours, " << choice.replay << " replay"
              << (settings.freezeEncoder ? "; encoder frozen" : "") << "\n";
    if (choice.casesWithoutRecord > 0) {
        std::cerr << "  note: " << choice.casesWithoutRecord
                  << " case(s) have no prediction.nii.gz; all their slices count as edited\n";
    }
    const std::string scoredOn = heldOut ? std::to_string(data.validation.size()) + " held-out case(s)"
                                         : "the training case itself (no case to hold out)";

    nn::setIntraOpThreads(threads);
    nn::Trainer trainer(parent.network, std::move(data), settings.training);
    nn::TrainerHooks hooks;
    hooks.stopRequested = [] { return StopSignals::requested(); };
    const auto before = trainer.validate(hooks.stopRequested);
    if (!before) return stoppedExit();
    std::cerr << "  Dice before: " << fixed(meanDice(*before), 4) << " on " << scoredOn << "\n";
    std::vector<nn::CaseDice> after;
    hooks.onEpoch = [&](const nn::EpochReport& report) {
        if (report.validationDice) after = report.cases;
        std::cerr << "  epoch " << report.epoch << "/" << report.epochs << ": loss " << fixed(report.trainingLoss, 4);
        if (report.validationDice) std::cerr << ", Dice " << fixed(*report.validationDice, 4);
        std::cerr << ", " << fixed(report.seconds, 1) << " s\n";
    };
    if (trainer.run(hooks) == nn::TrainingEnd::Stopped) return stoppedExit();

    nn::CheckpointInfo info = parent.info;
    info.training.parentCheckpoint = fs::absolute(settings.parent).lexically_normal().string() + " (" +
                                     fingerprint(settings.parent) + ")";
    info.training.data = fs::absolute(dataset.root).lexically_normal().string() + " (" + core::toString(dataset.layout) +
                         ", " + std::to_string(split.training.size()) + " corrected case(s))";
    info.training.epochs = settings.training.epochs;
    info.training.validationDice = meanDice(after);
    info.training.date = nn::currentUtcTime();
    info.training.notes = "fine-tuned on " + std::to_string(choice.edited) + " edited + " +
                          std::to_string(choice.neighbours) + " neighbour + " + std::to_string(choice.replay) +
                          " replay slices, lr " + fixed(settings.training.learningRate, 6) +
                          (settings.freezeEncoder ? ", encoder frozen" : "") + "; Dice on " + scoredOn + " " +
                          fixed(meanDice(*before), 4) + " -> " + fixed(meanDice(after), 4) +
                          ". Parent trained on: " + parent.info.training.data +
                          (parent.info.training.parentCheckpoint.empty()
                               ? std::string()
                               : "; parent fine-tuned from " + parent.info.training.parentCheckpoint);
    nn::saveCheckpoint(settings.out, info, trainer.network());

    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::cout << "Dice before " << fixed(meanDice(*before), 4) << ", after " << fixed(meanDice(after), 4) << " on "
              << scoredOn << "\n"
              << "wrote " << settings.out.string() << " (parent " << settings.parent.string() << "), " << fixed(seconds, 1)
              << " s\n";
    if (meanDice(after) < meanDice(*before)) {
        std::cerr << "liverseg finetune: warning: the Dice went down; the parent may be the better model\n";
    }
    return 0;
}

}  // namespace liverseg::app
