#pragma once
// Training a segmentation network on a slice cache.
//
// Trainer is the engine: Adam + BCEWithLogits (optionally + soft Dice), every head of a
// deep-supervised network trained, the CGM classifier trained on "slice has liver",
// seeded on-the-fly augmentation, per-epoch validation Dice per case, and a resumable
// state (weights, Adam state, position). Everything random is a function of (seed, epoch,
// step, rank), so N steps straight and N/2 + resume + N/2 give the same weights.
//
// It writes no files by itself: callers attach TrainerHooks (progress, logs, checkpoints;
// an all-reduce of gradients for data-parallel training) and call saveState/loadState.
// TrainingRunFolder is the file side of `liverseg train` (CSV curves, PNG plot, split and
// best/last/resume checkpoints), for rank 0 to attach.
//
// Reuse: fine-tuning passes a loaded network, its own slice list (edited slices + replay)
// and frozenPrefixes; data-parallel training sets rank/worldSize (each rank takes every
// worldSize-th batch slot of the same shuffled order) and afterBackward.
#include "core/Dataset.h"
#include "core/SliceCache.h"
#include "nn/Augmentation.h"
#include "nn/ModelConfig.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torch::optim {
class Adam;
}

namespace liverseg::nn {

class SegmentationNetworkImpl;

enum class LossKind { Bce, BceDice };
LossKind parseLossKind(const std::string& text);  // "bce" | "bce+dice"
std::string toString(LossKind kind);

// Slice `slice` of case `caseIndex` of a SliceCache.
struct SliceRef {
    std::uint32_t caseIndex = 0;
    std::uint32_t slice = 0;
};
inline bool operator==(SliceRef a, SliceRef b) { return a.caseIndex == b.caseIndex && a.slice == b.slice; }

// Slices scored together by validation Dice: a 3D case's slices, or a 2D volume's pictures.
struct ValidationUnit {
    std::string name;
    std::vector<SliceRef> slices;
};

struct TrainingData {
    std::shared_ptr<const core::SliceCache> cache;
    std::vector<SliceRef> trainingSlices;
    std::vector<ValidationUnit> validation;
};

// The slices of the split's training cases (cache case i = dataset case i), and one
// validation unit per validation case (3D) or per validation volume id (2D).
TrainingData makeTrainingData(std::shared_ptr<const core::SliceCache> cache, const core::Dataset& dataset,
                              const core::DatasetSplit& split);

// The cache settings that produce what `preprocessing` promises the network.
core::SlicePreparation slicePreparationFor(const Preprocessing& preprocessing, const core::LiverLabels& labels);

struct TrainingOptions {
    int epochs = 10;
    int batchSize = 8;
    double learningRate = 5e-4;
    LossKind loss = LossKind::Bce;
    AugmentationOptions augmentation;
    std::uint64_t seed = 1;
    std::int64_t stepsPerEpoch = 0;   // 0: one pass over the training slices (per rank)
    double threshold = 0.5;           // on the probability, for validation masks
    int validationBatchSize = 8;
    // Parameters whose state_dict name starts with one of these are not trained (e.g.
    // {"dconv.", "down"} freezes the encoder).
    std::vector<std::string> frozenPrefixes;
    // Every BatchNorm layer normalises with its running statistics and leaves them as they
    // are (as in eval mode), so samples of a batch no longer interact: for tiny batches, and
    // what makes N data-parallel ranks compute exactly one process's gradient.
    bool frozenBatchNorm = false;
    // false: validate only after the last epoch (fine-tuning scores before and after).
    bool validateEveryEpoch = true;
    int rank = 0;
    int worldSize = 1;

    void validate() const;  // core::InputError naming the bad field
};

struct StepReport {
    int epoch = 0;                 // 1-based
    int epochs = 0;
    std::int64_t stepInEpoch = 0;  // 1-based
    std::int64_t stepsPerEpoch = 0;
    std::int64_t globalStep = 0;   // steps done in the whole run
    double loss = 0;
    double seconds = 0;            // this step, data included
    double slicesPerSecond = 0;
};

struct CaseDice {
    std::string name;
    double dice = 0;
};

struct EpochReport {
    int epoch = 0;                 // 1-based
    int epochs = 0;
    std::int64_t globalStep = 0;
    double trainingLoss = 0;       // mean over the epoch's steps
    std::optional<double> validationDice;  // mean over validation units
    std::vector<CaseDice> cases;
    bool best = false;             // best so far (validation Dice, or training loss without validation)
    double seconds = 0;
};

struct TrainerHooks {
    std::function<void(const StepReport&)> onStep;
    std::function<void(const EpochReport&)> onEpoch;
    // After backward, before the optimizer step: e.g. all-reduce the gradients.
    std::function<void(SegmentationNetworkImpl&)> afterBackward;
    // Checked before every step and validation batch; true stops run() at that boundary.
    std::function<bool()> stopRequested;
};

enum class TrainingEnd { Finished, Stopped };

class Trainer {
public:
    Trainer(std::shared_ptr<SegmentationNetworkImpl> network, TrainingData data, TrainingOptions options);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Trains from the current position to options.epochs (validating after each epoch).
    // Stopped: stopRequested() said so; the position is at a step (or validation)
    // boundary and saveState() captures it.
    TrainingEnd run(const TrainerHooks& hooks = {});

    // One optimisation step on these slices (at the current position's seeds); returns
    // the loss. run() uses it; exposed for benchmarks and tests.
    double trainStep(const std::vector<SliceRef>& batch, const TrainerHooks& hooks = {});
    // Dice per validation unit in eval mode (train mode restored). nullopt when stopped.
    std::optional<std::vector<CaseDice>> validate(const std::function<bool()>& stopRequested = {});

    // Position: the epoch in progress (0-based) and the steps done in it.
    int epoch() const;
    std::int64_t stepInEpoch() const;
    std::int64_t globalStep() const;
    std::int64_t stepsPerEpoch() const;
    std::optional<double> bestValidationDice() const;
    const TrainingOptions& options() const;
    // Lets a resumed run train longer (more epochs) than it was started with.
    void setEpochs(int epochs);
    SegmentationNetworkImpl& network();
    const SegmentationNetworkImpl& network() const;
    torch::optim::Adam& optimizer();

    // The resumable state (weights, Adam state, position, best so far, and `extra`, e.g. the
    // caller's run description), written atomically.
    void saveState(const std::filesystem::path& file, const nlohmann::json& extra) const;
    // Restores a state saved by saveState for the same network and options; returns `extra`.
    // core::InputError when the file is not one or does not fit this network.
    nlohmann::json loadState(const std::filesystem::path& file);

private:
    struct State;
    std::unique_ptr<State> state_;
};

// The files of a training run in a folder:
//   train.json    the run's description (what `--resume` continues)
//   split.json    the cases of each side, the seed and the fraction
//   steps.csv     epoch, step, global_step, loss, seconds, slices_per_second
//   epochs.csv    epoch, global_step, training_loss, validation_dice, seconds
//   validation.csv epoch, case, dice
//   curves.png    step loss (blue, scaled to its maximum) and validation Dice (red, 0-1)
//   best.pt, last.pt  checkpoints (nn::saveCheckpoint) with training metadata
//   resume.pt     Trainer::saveState
class TrainingRunFolder {
public:
    TrainingRunFolder(std::filesystem::path folder, CheckpointInfo info);

    const std::filesystem::path& folder() const { return folder_; }
    std::filesystem::path resumeFile() const { return folder_ / "resume.pt"; }
    std::filesystem::path bestCheckpoint() const { return folder_ / "best.pt"; }
    std::filesystem::path lastCheckpoint() const { return folder_ / "last.pt"; }

    static void writeSplit(const std::filesystem::path& folder, const core::Dataset& dataset,
                           const core::DatasetSplit& split);
    // The split stored by writeSplit, mapped onto `dataset` (InputError if a case is gone).
    static core::DatasetSplit readSplit(const std::filesystem::path& folder, const core::Dataset& dataset);

    // Starts fresh CSVs, or (resuming) keeps the rows up to the trainer's position.
    void startLogs(const Trainer& trainer, bool resuming);
    void logStep(const StepReport& report);
    // Appends the epoch's rows, redraws the plot, writes last.pt (and best.pt when best).
    void finishEpoch(const EpochReport& report, const Trainer& trainer);
    // last.pt + resume.pt now (at an interruption); `extra` goes into the resume state.
    void saveInterrupted(const Trainer& trainer, const nlohmann::json& extra);
    void saveResume(const Trainer& trainer, const nlohmann::json& extra);

private:
    void writeCheckpoint(const std::filesystem::path& path, const Trainer& trainer, std::optional<double> dice,
                         int epochsDone);
    void drawCurves() const;

    std::filesystem::path folder_;
    CheckpointInfo info_;
    std::vector<std::pair<std::int64_t, double>> stepLosses_;
    std::vector<std::pair<std::int64_t, double>> validationDice_;
};

}  // namespace liverseg::nn
