#include "nn/Trainer.h"

#include "core/AtomicFile.h"
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/LabelOps.h"
#include "nn/Checkpoint.h"
#include "nn/Networks.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

namespace liverseg::nn {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using Clock = std::chrono::steady_clock;

constexpr const char* kStateFormat = "liverseg-training-state";
constexpr int kStateVersion = 1;

// Streams of randomness, each a function of (seed, stream, epoch or step, rank).
enum RandomStream : std::uint64_t { kOrderStream = 1, kAugmentStream = 2, kTorchStream = 3 };

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

torch::Tensor segmentationLoss(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind) {
    torch::Tensor loss = F::binary_cross_entropy_with_logits(logits, target);
    if (kind == LossKind::BceDice) {
        // Soft Dice over the whole batch (nnU-Net's batch Dice), smoothed by 1.
        const torch::Tensor probabilities = torch::sigmoid(logits);
        const torch::Tensor overlap = (probabilities * target).sum();
        loss = loss + 1.0 - (2.0 * overlap + 1.0) / (probabilities.sum() + target.sum() + 1.0);
    }
    return loss;
}

// The mask centred under the network's output (the seed UNet's output is 8 px smaller).
torch::Tensor cropToOutput(const torch::Tensor& masks, SpatialSize output) {
    const std::int64_t top = (masks.size(2) - output.height) / 2, left = (masks.size(3) - output.width) / 2;
    if (top == 0 && left == 0 && masks.size(2) == output.height && masks.size(3) == output.width) return masks;
    return masks.slice(2, top, top + output.height).slice(3, left, left + output.width);
}

std::string formatNumber(double value) {
    std::ostringstream out;
    out.precision(8);
    out << value;
    return out.str();
}

}  // namespace

// --- small public helpers --------------------------------------------------------------------

LossKind parseLossKind(const std::string& text) {
    if (text == "bce") return LossKind::Bce;
    if (text == "bce+dice") return LossKind::BceDice;
    throw core::InputError("unknown loss '" + text + "'; use bce or bce+dice");
}

std::string toString(LossKind kind) { return kind == LossKind::BceDice ? "bce+dice" : "bce"; }

void TrainingOptions::validate() const {
    if (epochs < 1) throw core::InputError("epochs must be at least 1");
    if (batchSize < 1) throw core::InputError("batch size must be at least 1");
    if (!(learningRate > 0) || !std::isfinite(learningRate)) throw core::InputError("learning rate must be positive");
    if (stepsPerEpoch < 0) throw core::InputError("steps per epoch must not be negative");
    if (!(threshold > 0 && threshold < 1)) throw core::InputError("threshold must be in (0, 1)");
    if (validationBatchSize < 1) throw core::InputError("validation batch size must be at least 1");
    if (worldSize < 1 || rank < 0 || rank >= worldSize) throw core::InputError("rank must be in [0, world size)");
    if (augmentation.minScale <= 0 || augmentation.maxScale < augmentation.minScale) {
        throw core::InputError("augmentation scale range is empty");
    }
}

core::SlicePreparation slicePreparationFor(const Preprocessing& preprocessing, const core::LiverLabels& labels) {
    preprocessing.validate();
    core::SlicePreparation preparation;
    preparation.windowLowHu = preprocessing.windowLowHu;
    preparation.windowHighHu = preprocessing.windowHighHu;
    preparation.pixelSpacingMm = preprocessing.pixelSpacingMm;
    preparation.side = preprocessing.inputSize;
    preparation.liverLabels = labels;
    return preparation;
}

TrainingData makeTrainingData(std::shared_ptr<const core::SliceCache> cache, const core::Dataset& dataset,
                              const core::DatasetSplit& split) {
    if (cache->caseCount() != dataset.cases.size()) {
        throw std::invalid_argument("makeTrainingData: the cache does not hold the dataset's cases");
    }
    TrainingData data;
    for (std::size_t index : split.training) {
        for (std::size_t z = 0; z < cache->caseAt(index).sliceCount(); ++z) {
            data.trainingSlices.push_back({std::uint32_t(index), std::uint32_t(z)});
        }
    }
    std::map<std::string, std::size_t> unitOfGroup;
    for (std::size_t index : split.validation) {
        const core::DatasetCase& item = dataset.cases[index];
        const std::string name = dataset.isTwoDimensional() ? item.group : item.id;
        auto [it, inserted] = unitOfGroup.emplace(name, data.validation.size());
        if (inserted) data.validation.push_back({name, {}});
        for (std::size_t z = 0; z < cache->caseAt(index).sliceCount(); ++z) {
            data.validation[it->second].slices.push_back({std::uint32_t(index), std::uint32_t(z)});
        }
    }
    data.cache = std::move(cache);
    return data;
}

// --- Trainer ------------------------------------------------------------------------------

struct Trainer::State {
    SegmentationNetwork network;
    TrainingData data;
    TrainingOptions options;

    bool isFrozen(const std::string& name) const {
        return std::any_of(options.frozenPrefixes.begin(), options.frozenPrefixes.end(),
                           [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; });
    }
    // Train mode, except the BatchNorm layers of frozen parts: they keep normalising with the
    // statistics they came with, or a frozen encoder would still drift.
    void enterTrainingMode() const {
        network->train();
        if (options.frozenPrefixes.empty() && !options.frozenBatchNorm) return;
        for (const auto& item : network->named_modules()) {
            if (!item.value()->as<torch::nn::BatchNorm2dImpl>()) continue;
            if (options.frozenBatchNorm || isFrozen(item.key() + ".")) item.value()->eval();
        }
    }
    std::vector<torch::Tensor> trainable;
    std::unique_ptr<torch::optim::Adam> optimizer;
    SpatialSize outputSize;
    std::int64_t stepsPerEpoch = 1;

    int epoch = 0;
    std::int64_t stepInEpoch = 0;
    std::int64_t globalStep = 0;
    double epochLossSum = 0;
    double epochSeconds = 0;
    std::optional<double> bestDice;
    std::optional<double> bestLoss;

    int orderEpoch = -1;
    std::vector<std::uint32_t> order;  // indices into data.trainingSlices for orderEpoch

    const std::vector<std::uint32_t>& epochOrder() {
        if (orderEpoch == epoch) return order;
        const std::size_t count = data.trainingSlices.size();
        const std::size_t needed = std::size_t(stepsPerEpoch) * std::size_t(options.batchSize) * std::size_t(options.worldSize);
        order.clear();
        for (std::uint64_t cycle = 0; order.size() < needed; ++cycle) {
            std::vector<std::uint32_t> permutation(count);
            std::iota(permutation.begin(), permutation.end(), 0u);
            std::mt19937_64 random(mixSeed(options.seed, kOrderStream, std::uint64_t(epoch), cycle));
            for (std::size_t i = count; i > 1; --i) std::swap(permutation[i - 1], permutation[random() % i]);
            order.insert(order.end(), permutation.begin(), permutation.end());
        }
        order.resize(needed);
        orderEpoch = epoch;
        return order;
    }

    std::vector<SliceRef> batchAt(std::int64_t step) {
        const auto& slots = epochOrder();
        const std::size_t batch = std::size_t(options.batchSize);
        const std::size_t first = (std::size_t(step) * std::size_t(options.worldSize) + std::size_t(options.rank)) * batch;
        std::vector<SliceRef> refs;
        for (std::size_t k = 0; k < batch; ++k) refs.push_back(data.trainingSlices[slots[first + k]]);
        return refs;
    }

    torch::Tensor loss(const NetworkOutputs& outputs, const torch::Tensor& target) const {
        std::vector<torch::Tensor> heads{outputs.logits};
        heads.insert(heads.end(), outputs.auxiliaryLogits.begin(), outputs.auxiliaryLogits.end());
        torch::Tensor segmentationTarget = target;
        torch::Tensor classification;
        if (outputs.classProbabilities.defined()) {
            // CGM: the classifier learns "slice has liver" (BCE on its two sigmoid outputs).
            // Where it says "no organ" every head is the constant kNoOrganLogit, which carries
            // no gradient; those samples are left out of the segmentation loss.
            const torch::Tensor hasLiver = target.flatten(1).amax(1).gt(0.5).to(torch::kFloat32);
            classification = F::binary_cross_entropy(outputs.classProbabilities, torch::stack({1 - hasLiver, hasLiver}, 1));
            const torch::Tensor open = outputs.classProbabilities.argmax(1).eq(1).nonzero().flatten();
            if (open.numel() == 0) return classification;
            for (auto& head : heads) head = head.index_select(0, open);
            segmentationTarget = target.index_select(0, open);
        }
        torch::Tensor total = torch::zeros({});
        for (const auto& head : heads) total = total + segmentationLoss(head, segmentationTarget, options.loss);
        total = total / double(heads.size());
        return classification.defined() ? total + classification : total;
    }
};

Trainer::Trainer(SegmentationNetwork network, TrainingData data, TrainingOptions options) : state_(std::make_unique<State>()) {
    options.validate();
    if (!data.cache) throw std::invalid_argument("Trainer: no slice cache");
    if (data.trainingSlices.empty()) throw core::InputError("no training slices (every case is in the validation split?)");
    const ModelConfig& config = network->config();
    const std::int64_t side = data.cache->side();
    state_->outputSize = outputSize(config, {side, side});

    for (const auto& item : network->named_parameters(/*recurse=*/true)) {
        const bool frozen = std::any_of(options.frozenPrefixes.begin(), options.frozenPrefixes.end(),
                                        [&](const std::string& prefix) { return item.key().rfind(prefix, 0) == 0; });
        item.value().set_requires_grad(!frozen);
        if (!frozen) state_->trainable.push_back(item.value());
    }
    if (state_->trainable.empty()) throw core::InputError("every parameter is frozen; nothing to train");
    state_->optimizer = std::make_unique<torch::optim::Adam>(state_->trainable, torch::optim::AdamOptions(options.learningRate));

    const std::size_t perStep = std::size_t(options.batchSize) * std::size_t(options.worldSize);
    state_->stepsPerEpoch = options.stepsPerEpoch > 0
                                ? options.stepsPerEpoch
                                : std::max<std::int64_t>(1, std::int64_t(data.trainingSlices.size() / perStep));
    state_->network = std::move(network);
    state_->data = std::move(data);
    state_->options = std::move(options);
    state_->enterTrainingMode();
}

Trainer::~Trainer() = default;

int Trainer::epoch() const { return state_->epoch; }
std::int64_t Trainer::stepInEpoch() const { return state_->stepInEpoch; }
std::int64_t Trainer::globalStep() const { return state_->globalStep; }
std::int64_t Trainer::stepsPerEpoch() const { return state_->stepsPerEpoch; }
std::optional<double> Trainer::bestValidationDice() const { return state_->bestDice; }
const TrainingOptions& Trainer::options() const { return state_->options; }
SegmentationNetworkImpl& Trainer::network() { return *state_->network; }
const SegmentationNetworkImpl& Trainer::network() const { return *state_->network; }
torch::optim::Adam& Trainer::optimizer() { return *state_->optimizer; }

void Trainer::setEpochs(int epochs) {
    if (epochs < 1) throw core::InputError("epochs must be at least 1");
    state_->options.epochs = epochs;
}

double Trainer::trainStep(const std::vector<SliceRef>& batch, const TrainerHooks& hooks) {
    State& s = *state_;
    const core::SliceCache& cache = *s.data.cache;
    const int context = s.network->config().inputChannels;
    const std::int64_t side = cache.side();
    const auto count = std::int64_t(batch.size());
    torch::Tensor images = torch::empty({count, context, side, side});
    torch::Tensor masks = torch::empty({count, 1, side, side});
    for (std::int64_t b = 0; b < count; ++b) {
        cache.readSample(batch[std::size_t(b)].caseIndex, batch[std::size_t(b)].slice, context,
                         images[b].data_ptr<float>(), masks[b].data_ptr<float>());
    }
    const auto step = std::uint64_t(s.globalStep), rank = std::uint64_t(s.options.rank);
    augmentBatch(images, masks, mixSeed(s.options.seed, kAugmentStream, step, rank), s.options.augmentation);
    torch::manual_seed(mixSeed(s.options.seed, kTorchStream, step, rank));  // dropout (CGM)

    s.enterTrainingMode();
    const NetworkOutputs outputs = s.network->forwardAll(images);
    torch::Tensor loss = s.loss(outputs, cropToOutput(masks, s.outputSize));
    s.optimizer->zero_grad();
    loss.backward();
    if (hooks.afterBackward) hooks.afterBackward(*s.network);
    s.optimizer->step();
    return loss.item<double>();
}

std::optional<std::vector<CaseDice>> Trainer::validate(const std::function<bool()>& stopRequested) {
    State& s = *state_;
    const core::SliceCache& cache = *s.data.cache;
    const int context = s.network->config().inputChannels;
    const std::int64_t side = cache.side();
    const SpatialSize out = s.outputSize;
    const float logitThreshold = float(std::log(s.options.threshold / (1 - s.options.threshold)));
    const std::int64_t top = (side - out.height) / 2, left = (side - out.width) / 2;

    torch::NoGradGuard noGrad;
    s.network->eval();
    std::vector<CaseDice> results;
    std::vector<float> maskBuffer(std::size_t(side * side));
    for (const ValidationUnit& unit : s.data.validation) {
        core::Geometry geometry;
        geometry.size = {std::size_t(out.width), std::size_t(out.height), unit.slices.size()};
        geometry.spacing = {cache.preparation().pixelSpacingMm, cache.preparation().pixelSpacingMm,
                            cache.caseAt(unit.slices.front().caseIndex).sliceSpacingMm()};
        core::LabelMap predicted(geometry, 0), reference(geometry, 0);
        for (std::size_t first = 0; first < unit.slices.size(); first += std::size_t(s.options.validationBatchSize)) {
            if (stopRequested && stopRequested()) {
                s.enterTrainingMode();
                return std::nullopt;
            }
            const std::size_t count = std::min(std::size_t(s.options.validationBatchSize), unit.slices.size() - first);
            torch::Tensor images = torch::empty({std::int64_t(count), context, side, side});
            for (std::size_t b = 0; b < count; ++b) {
                const SliceRef ref = unit.slices[first + b];
                cache.readSample(ref.caseIndex, ref.slice, context, images[std::int64_t(b)].data_ptr<float>(), maskBuffer.data());
                std::uint8_t* target = reference.slice(first + b);
                for (std::int64_t y = 0; y < out.height; ++y) {
                    for (std::int64_t x = 0; x < out.width; ++x) {
                        target[y * out.width + x] = maskBuffer[std::size_t((y + top) * side + x + left)] > 0.5f ? 1 : 0;
                    }
                }
            }
            const torch::Tensor decided = s.network->forward(images).gt(logitThreshold).to(torch::kUInt8).contiguous();
            std::memcpy(predicted.slice(first), decided.data_ptr<std::uint8_t>(), std::size_t(decided.numel()));
        }
        results.push_back({unit.name, core::diceCoefficient(predicted, reference)});
    }
    s.enterTrainingMode();
    return results;
}

TrainingEnd Trainer::run(const TrainerHooks& hooks) {
    State& s = *state_;
    const auto stop = [&hooks] { return hooks.stopRequested && hooks.stopRequested(); };
    while (s.epoch < s.options.epochs) {
        while (s.stepInEpoch < s.stepsPerEpoch) {
            if (stop()) return TrainingEnd::Stopped;
            const auto started = Clock::now();
            const double loss = trainStep(s.batchAt(s.stepInEpoch), hooks);
            const double seconds = secondsSince(started);
            s.epochLossSum += loss;
            s.epochSeconds += seconds;
            ++s.stepInEpoch;
            ++s.globalStep;
            if (hooks.onStep) {
                hooks.onStep({s.epoch + 1, s.options.epochs, s.stepInEpoch, s.stepsPerEpoch, s.globalStep, loss, seconds,
                              double(s.options.batchSize) / seconds});
            }
        }
        const auto validationStarted = Clock::now();
        EpochReport report;
        report.epoch = s.epoch + 1;
        report.epochs = s.options.epochs;
        report.globalStep = s.globalStep;
        report.trainingLoss = s.epochLossSum / double(s.stepsPerEpoch);
        const bool lastEpoch = s.epoch + 1 == s.options.epochs;
        if (!s.data.validation.empty() && (s.options.validateEveryEpoch || lastEpoch)) {
            auto cases = validate(stop);
            if (!cases) return TrainingEnd::Stopped;  // the epoch's validation is redone on resume
            report.cases = std::move(*cases);
            double sum = 0;
            for (const auto& item : report.cases) sum += item.dice;
            report.validationDice = sum / double(report.cases.size());
            report.best = !s.bestDice || *report.validationDice > *s.bestDice;
            if (report.best) s.bestDice = report.validationDice;
        } else {
            report.best = !s.bestLoss || report.trainingLoss < *s.bestLoss;
        }
        if (!s.bestLoss || report.trainingLoss < *s.bestLoss) s.bestLoss = report.trainingLoss;
        report.seconds = s.epochSeconds + secondsSince(validationStarted);
        ++s.epoch;
        s.stepInEpoch = 0;
        s.epochLossSum = 0;
        s.epochSeconds = 0;
        if (hooks.onEpoch) hooks.onEpoch(report);
    }
    return TrainingEnd::Finished;
}

void Trainer::saveState(const fs::path& file, const nlohmann::json& extra) const {
    const State& s = *state_;
    torch::serialize::OutputArchive archive, model, optimizer;
    s.network->save(model);
    s.optimizer->save(optimizer);
    archive.write("model", model);
    archive.write("optimizer", optimizer);
    nlohmann::json position = {
        {"format", kStateFormat},
        {"version", kStateVersion},
        {"config", s.network->config()},
        {"epoch", s.epoch},
        {"step_in_epoch", s.stepInEpoch},
        {"global_step", s.globalStep},
        {"epoch_loss_sum", s.epochLossSum},
        {"epoch_seconds", s.epochSeconds},
        {"best_dice", s.bestDice ? nlohmann::json(*s.bestDice) : nlohmann::json()},
        {"best_loss", s.bestLoss ? nlohmann::json(*s.bestLoss) : nlohmann::json()},
        // Every random draw is derived from (seed, stream, epoch/step, rank): this is the
        // whole random state.
        {"rng", {{"scheme", "counter"}, {"seed", s.options.seed}, {"next_step", s.globalStep}}},
        {"extra", extra},
    };
    archive.write("position", c10::IValue(position.dump()));
    core::writeAtomically(file, [&](const fs::path& temporary) { archive.save_to(temporary.string()); });
}

nlohmann::json Trainer::loadState(const fs::path& file) {
    State& s = *state_;
    if (!fs::is_regular_file(file)) throw core::InputError(file.string() + ": no training state to resume from");
    nlohmann::json position;
    try {
        torch::serialize::InputArchive archive;
        archive.load_from(file.string());
        c10::IValue text;
        archive.read("position", text);
        position = nlohmann::json::parse(text.toStringRef());
        if (position.value("format", "") != kStateFormat || position.value("version", 0) != kStateVersion) {
            throw core::InputError(file.string() + ": not a liverseg training state of version " + std::to_string(kStateVersion));
        }
        if (position.at("config").get<ModelConfig>() != s.network->config()) {
            throw core::InputError(file.string() + ": saved for " + position.at("config").get<ModelConfig>().describe() +
                                   ", not " + s.network->config().describe());
        }
        torch::serialize::InputArchive model, optimizer;
        archive.read("model", model);
        archive.read("optimizer", optimizer);
        s.network->load(model);
        s.optimizer->load(optimizer);
    } catch (const c10::Error& error) {
        throw core::InputError(file.string() + ": cannot read the training state (" +
                               std::string(error.what_without_backtrace()).substr(0, 200) + ")");
    } catch (const nlohmann::json::exception& error) {
        throw core::InputError(file.string() + ": damaged training state (" + error.what() + ")");
    }
    s.epoch = position.at("epoch").get<int>();
    s.stepInEpoch = position.at("step_in_epoch").get<std::int64_t>();
    s.globalStep = position.at("global_step").get<std::int64_t>();
    s.epochLossSum = position.at("epoch_loss_sum").get<double>();
    s.epochSeconds = position.value("epoch_seconds", 0.0);
    s.bestDice = position.at("best_dice").is_null() ? std::nullopt : std::optional<double>(position.at("best_dice").get<double>());
    s.bestLoss = position.at("best_loss").is_null() ? std::nullopt : std::optional<double>(position.at("best_loss").get<double>());
    if (s.stepInEpoch > s.stepsPerEpoch) {
        throw core::InputError(file.string() + ": saved at step " + std::to_string(s.stepInEpoch) +
                               " of an epoch, but this run has " + std::to_string(s.stepsPerEpoch) + " steps per epoch");
    }
    s.orderEpoch = -1;
    s.enterTrainingMode();
    return position.at("extra");
}

// --- TrainingRunFolder -------------------------------------------------------------------------

namespace {

std::vector<std::string> readLines(const fs::path& file) {
    std::vector<std::string> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) lines.push_back(line);
    }
    return lines;
}

void writeLines(const fs::path& file, const std::vector<std::string>& lines) {
    core::writeAtomically(file, [&](const fs::path& temporary) {
        std::ofstream out(temporary, std::ios::trunc);
        for (const auto& line : lines) out << line << "\n";
        out.flush();
        if (!out) throw core::InputError(file.string() + ": cannot write");
    });
}

void appendLine(const fs::path& file, const std::string& line) {
    std::ofstream out(file, std::ios::app);
    out << line << "\n";
    if (!out) throw core::InputError(file.string() + ": cannot write");
}

std::vector<std::string> splitCsv(const std::string& line) {
    std::vector<std::string> fields;
    std::stringstream stream(line);
    for (std::string field; std::getline(stream, field, ',');) fields.push_back(field);
    return fields;
}

// Keeps the header and the rows whose column `column` is at most `limit`.
std::vector<std::string> keepRowsUpTo(const fs::path& file, const std::string& header, std::size_t column, double limit) {
    std::vector<std::string> kept{header};
    const auto lines = readLines(file);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto fields = splitCsv(lines[i]);
        if (fields.size() > column && std::stod(fields[column]) <= limit) kept.push_back(lines[i]);
    }
    return kept;
}

const char* kStepsHeader = "epoch,step,global_step,loss,seconds,slices_per_second";
const char* kEpochsHeader = "epoch,global_step,training_loss,validation_dice,seconds";
const char* kValidationHeader = "epoch,case,dice";

struct Rgb {
    std::uint8_t r, g, b;
};

class Canvas {
public:
    Canvas(std::size_t width, std::size_t height) : picture_{width, height, 3, std::vector<std::uint8_t>(width * height * 3, 255)} {}

    void dot(long x, long y, Rgb colour, int radius = 0) {
        for (long dy = -radius; dy <= radius; ++dy) {
            for (long dx = -radius; dx <= radius; ++dx) {
                const long px = x + dx, py = y + dy;
                if (px < 0 || py < 0 || px >= long(picture_.width) || py >= long(picture_.height)) continue;
                std::uint8_t* pixel = picture_.pixels.data() + (std::size_t(py) * picture_.width + std::size_t(px)) * 3;
                pixel[0] = colour.r;
                pixel[1] = colour.g;
                pixel[2] = colour.b;
            }
        }
    }

    void line(double x0, double y0, double x1, double y1, Rgb colour, int radius = 0) {
        const int steps = int(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
        for (int i = 0; i <= steps; ++i) {
            const double t = double(i) / steps;
            dot(std::lround(x0 + t * (x1 - x0)), std::lround(y0 + t * (y1 - y0)), colour, radius);
        }
    }

    const core::Picture& picture() const { return picture_; }

private:
    core::Picture picture_;
};

}  // namespace

TrainingRunFolder::TrainingRunFolder(fs::path folder, CheckpointInfo info) : folder_(std::move(folder)), info_(std::move(info)) {
    std::error_code error;
    fs::create_directories(folder_, error);
    if (!fs::is_directory(folder_)) throw core::InputError(folder_.string() + ": cannot create the run folder");
}

void TrainingRunFolder::writeSplit(const fs::path& folder, const core::Dataset& dataset, const core::DatasetSplit& split) {
    nlohmann::json json;
    json["data"] = fs::absolute(dataset.root).lexically_normal().string();
    json["layout"] = core::toString(dataset.layout);
    json["seed"] = split.seed;
    json["validation_fraction"] = split.validationFraction;
    json["split_by"] = dataset.isTwoDimensional() ? "volume id" : "case";
    for (const auto& [key, indices] : {std::pair{"training", &split.training}, std::pair{"validation", &split.validation}}) {
        std::set<std::string> groups;
        json[key] = nlohmann::json::array();
        for (std::size_t index : *indices) {
            json[key].push_back(dataset.cases[index].id);
            groups.insert(dataset.cases[index].group);
        }
        json[std::string(key) + "_groups"] = groups;
    }
    writeLines(folder / "split.json", {json.dump(2)});
}

core::DatasetSplit TrainingRunFolder::readSplit(const fs::path& folder, const core::Dataset& dataset) {
    const fs::path file = folder / "split.json";
    std::ifstream in(file);
    if (!in) throw core::InputError(file.string() + ": missing; cannot resume with the same split");
    core::DatasetSplit split;
    try {
        const nlohmann::json json = nlohmann::json::parse(in);
        split.seed = json.at("seed").get<std::uint64_t>();
        split.validationFraction = json.at("validation_fraction").get<double>();
        std::map<std::string, std::size_t> indexOf;
        for (std::size_t i = 0; i < dataset.cases.size(); ++i) indexOf[dataset.cases[i].id] = i;
        for (const auto& [key, indices] : {std::pair{"training", &split.training}, std::pair{"validation", &split.validation}}) {
            for (const auto& id : json.at(key)) {
                const auto found = indexOf.find(id.get<std::string>());
                if (found == indexOf.end()) {
                    throw core::InputError(file.string() + ": case '" + id.get<std::string>() + "' is no longer in " +
                                           dataset.root.string());
                }
                indices->push_back(found->second);
            }
            std::sort(indices->begin(), indices->end());
        }
    } catch (const nlohmann::json::exception& error) {
        throw core::InputError(file.string() + ": damaged (" + error.what() + ")");
    }
    return split;
}

void TrainingRunFolder::startLogs(const Trainer& trainer, bool resuming) {
    const fs::path steps = folder_ / "steps.csv", epochs = folder_ / "epochs.csv", validation = folder_ / "validation.csv";
    stepLosses_.clear();
    validationDice_.clear();
    if (!resuming) {
        writeLines(steps, {kStepsHeader});
        writeLines(epochs, {kEpochsHeader});
        writeLines(validation, {kValidationHeader});
        return;
    }
    // Rows written after the resumable state was saved (a crash) are dropped.
    const auto stepRows = keepRowsUpTo(steps, kStepsHeader, 2, double(trainer.globalStep()));
    const auto epochRows = keepRowsUpTo(epochs, kEpochsHeader, 0, double(trainer.epoch()));
    writeLines(steps, stepRows);
    writeLines(epochs, epochRows);
    writeLines(validation, keepRowsUpTo(validation, kValidationHeader, 0, double(trainer.epoch())));
    for (std::size_t i = 1; i < stepRows.size(); ++i) {
        const auto fields = splitCsv(stepRows[i]);
        stepLosses_.emplace_back(std::stoll(fields[2]), std::stod(fields[3]));
    }
    for (std::size_t i = 1; i < epochRows.size(); ++i) {
        const auto fields = splitCsv(epochRows[i]);
        if (fields.size() > 3 && !fields[3].empty()) validationDice_.emplace_back(std::stoll(fields[1]), std::stod(fields[3]));
    }
}

void TrainingRunFolder::logStep(const StepReport& report) {
    appendLine(folder_ / "steps.csv", std::to_string(report.epoch) + "," + std::to_string(report.stepInEpoch) + "," +
                                          std::to_string(report.globalStep) + "," + formatNumber(report.loss) + "," +
                                          formatNumber(report.seconds) + "," + formatNumber(report.slicesPerSecond));
    stepLosses_.emplace_back(report.globalStep, report.loss);
}

void TrainingRunFolder::finishEpoch(const EpochReport& report, const Trainer& trainer) {
    appendLine(folder_ / "epochs.csv",
               std::to_string(report.epoch) + "," + std::to_string(report.globalStep) + "," + formatNumber(report.trainingLoss) +
                   "," + (report.validationDice ? formatNumber(*report.validationDice) : std::string()) + "," +
                   formatNumber(report.seconds));
    for (const auto& item : report.cases) {
        appendLine(folder_ / "validation.csv", std::to_string(report.epoch) + "," + item.name + "," + formatNumber(item.dice));
    }
    if (report.validationDice) validationDice_.emplace_back(report.globalStep, *report.validationDice);
    drawCurves();
    writeCheckpoint(lastCheckpoint(), trainer, report.validationDice, report.epoch);
    if (report.best) writeCheckpoint(bestCheckpoint(), trainer, report.validationDice, report.epoch);
}

void TrainingRunFolder::saveResume(const Trainer& trainer, const nlohmann::json& extra) {
    trainer.saveState(resumeFile(), extra);
}

void TrainingRunFolder::saveInterrupted(const Trainer& trainer, const nlohmann::json& extra) {
    writeCheckpoint(lastCheckpoint(), trainer, std::nullopt, trainer.epoch());
    saveResume(trainer, extra);
}

void TrainingRunFolder::writeCheckpoint(const fs::path& path, const Trainer& trainer, std::optional<double> dice,
                                        int epochsDone) {
    CheckpointInfo info = info_;
    info.training.epochs = epochsDone;
    info.training.validationDice = dice;
    info.training.date = currentUtcTime();
    saveCheckpoint(path, info, trainer.network());
}

void TrainingRunFolder::drawCurves() const {
    constexpr long kWidth = 800, kHeight = 450, kMargin = 40;
    Canvas canvas(kWidth, kHeight);
    const Rgb axis{0, 0, 0}, grid{215, 215, 215}, lossColour{31, 97, 201}, diceColour{214, 39, 40};
    const double left = kMargin, right = kWidth - kMargin, top = kMargin, bottom = kHeight - kMargin;
    for (int i = 1; i <= 4; ++i) {
        const double y = bottom - (bottom - top) * i / 4.0;
        canvas.line(left, y, right, y, grid);
    }
    canvas.line(left, bottom, right, bottom, axis);
    canvas.line(left, top, left, bottom, axis);
    canvas.line(right, top, right, bottom, axis);
    std::int64_t lastStep = 1;
    double maxLoss = 1e-12;
    for (const auto& [step, loss] : stepLosses_) {
        lastStep = std::max(lastStep, step);
        if (std::isfinite(loss)) maxLoss = std::max(maxLoss, loss);
    }
    for (const auto& point : validationDice_) lastStep = std::max(lastStep, point.first);
    const auto xOf = [&](std::int64_t step) { return left + (right - left) * double(step) / double(lastStep); };
    const auto yOf = [&](double fraction) { return bottom - (bottom - top) * std::clamp(fraction, 0.0, 1.0); };
    for (std::size_t i = 1; i < stepLosses_.size(); ++i) {
        if (!std::isfinite(stepLosses_[i - 1].second) || !std::isfinite(stepLosses_[i].second)) continue;  // diverged steps
        canvas.line(xOf(stepLosses_[i - 1].first), yOf(stepLosses_[i - 1].second / maxLoss), xOf(stepLosses_[i].first),
                    yOf(stepLosses_[i].second / maxLoss), lossColour);
    }
    for (std::size_t i = 0; i < validationDice_.size(); ++i) {
        const double x = xOf(validationDice_[i].first), y = yOf(validationDice_[i].second);
        canvas.dot(std::lround(x), std::lround(y), diceColour, 3);
        if (i > 0) canvas.line(xOf(validationDice_[i - 1].first), yOf(validationDice_[i - 1].second), x, y, diceColour, 1);
    }
    // Legend swatches, top left: blue = loss, red = validation Dice.
    canvas.line(left + 10, top - 20, left + 40, top - 20, lossColour, 2);
    canvas.line(left + 60, top - 20, left + 90, top - 20, diceColour, 2);
    core::writePng(canvas.picture(), folder_ / "curves.png");
}

}  // namespace liverseg::nn
