#include "app/Commands.h"
#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/Dataset.h"
#include "core/LabelOps.h"
#include "core/Metrics.h"
#include "core/SliceCache.h"
#include "nn/Checkpoint.h"
#include "nn/InferenceEngine.h"
#include "nn/Trainer.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <unistd.h>

namespace liverseg::app {
namespace {

namespace fs = std::filesystem;

const char* kHelp = R"(usage: liverseg evaluate --pred P --ref R [--liver-labels 1,2] [--csv FILE] [--json FILE]
       liverseg evaluate --weights CKPT --data DIR [--split RUN_DIR] [--liver-labels 1,2]
                         [--mask-name NAME] [--save-masks DIR] [--threads N] [--precision fp32|bf16]
                         [--csv FILE] [--json FILE]

Scores predicted liver masks against reference masks on the same grid. P and R are two
mask files, or two folders whose masks are matched by file name. With --weights the
checkpoint first segments every case of the dataset folder DIR (any layout `liverseg train`
reads), exactly as `liverseg predict` does (post-processing included), and each mask is
scored against the case's reference; --split RUN_DIR scores only the validation cases of
that training run (its split.json), --save-masks writes the predicted masks. A 2D picture
dataset is scored per picture on the network's input plane, prepared as in training
(spacing: the checkpoint's pixel spacing, as pictures do not record theirs); surface
distances are not computed for single pictures. Per case and summary
(mean, median, std over cases, and global Dice over all voxels pooled):
  Dice, Jaccard, VOE, RVD, ASSD, MSSD (maximum surface distance) and HD95 in mm using the
  real spacing, predicted and reference volumes in mL.
--liver-labels: which reference label values count as liver (default: any non-zero; LiTS
1,2; TotalSegmentator 5). Predictions count any non-zero voxel.
Empty masks: both empty gives Dice 1 and distances 0; when exactly one is empty, Dice is
0, surface distances are "n/a" (JSON null) and left out of the distance summaries, and
RVD is n/a when the reference is empty (-1 when the prediction is).
)";

struct CaseScore {
    std::string name;
    core::SegmentationMetrics metrics;
};

// Every case scored, and the voxel counts pooled over all of them for the global Dice.
struct Scores {
    std::vector<CaseScore> cases;
    std::size_t pooledIntersection = 0;
    std::size_t pooledSizes = 0;

    void add(std::string name, const core::SegmentationMetrics& metrics) {
        cases.push_back({std::move(name), metrics});
        pooledIntersection += metrics.intersection;
        pooledSizes += metrics.predictedVoxels + metrics.referenceVoxels;
    }
};

std::vector<std::uint8_t> parseLabels(const std::string& text) {
    std::vector<std::uint8_t> labels;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) {
        const double value = parseNumber(item, "evaluate --liver-labels");
        if (value < 1 || value > 255 || value != std::floor(value)) {
            throw UsageError("evaluate: --liver-labels takes whole numbers from 1 to 255");
        }
        labels.push_back(std::uint8_t(value));
    }
    return labels;
}

core::LabelMap selectLabels(core::LabelMap labels, const std::vector<std::uint8_t>& liverLabels) {
    if (liverLabels.empty()) return labels;
    for (auto& voxel : labels.voxels()) {
        voxel = std::find(liverLabels.begin(), liverLabels.end(), voxel) != liverLabels.end() ? 1 : 0;
    }
    return labels;
}

std::vector<std::pair<std::string, std::pair<fs::path, fs::path>>> matchCases(const fs::path& pred, const fs::path& ref) {
    if (!fs::exists(pred)) throw core::InputError(pred.string() + ": no such file or folder");
    if (!fs::exists(ref)) throw core::InputError(ref.string() + ": no such file or folder");
    if (fs::is_directory(pred) != fs::is_directory(ref)) {
        throw core::InputError("--pred and --ref must both be files or both be folders");
    }
    std::vector<std::pair<std::string, std::pair<fs::path, fs::path>>> cases;
    if (!fs::is_directory(pred)) {
        cases.push_back({pred.filename().string(), {pred, ref}});
        return cases;
    }
    std::vector<std::string> unmatched;
    for (const auto& entry : fs::directory_iterator(pred)) {
        if (!entry.is_regular_file() || !core::isSupportedImageExtension(entry.path())) continue;
        const std::string name = entry.path().filename().string();
        if (fs::exists(ref / name)) cases.push_back({name, {entry.path(), ref / name}});
        else unmatched.push_back(name);
    }
    std::sort(cases.begin(), cases.end());
    if (cases.empty()) {
        throw core::InputError(pred.string() + ": no mask file has a namesake in " + ref.string());
    }
    for (const auto& name : unmatched) std::cerr << "evaluate: warning: " << name << " has no reference; skipped\n";
    return cases;
}

Scores scoreMaskFiles(const fs::path& pred, const fs::path& ref, const std::vector<std::uint8_t>& liverLabels) {
    Scores scores;
    for (const auto& [name, paths] : matchCases(pred, ref)) {
        const core::LabelMap reference = selectLabels(core::readLabelMap(paths.second), liverLabels);
        const core::LabelMap predicted = core::readLabelMapOnGrid(paths.first, reference.geometry());
        scores.add(name, core::computeMetrics(predicted, reference));
    }
    return scores;
}

struct ModelEvaluation {
    fs::path weights;
    fs::path data;
    std::string maskName;
    std::optional<fs::path> splitRun;
    std::optional<fs::path> saveMasks;
    nn::InferenceOptions options;
};

// The dataset's cases to score: all, or the validation side of a training run's split.
std::vector<core::DatasetCase> casesToScore(const core::Dataset& dataset, const std::optional<fs::path>& splitRun) {
    if (!splitRun) return dataset.cases;
    const core::DatasetSplit split = nn::TrainingRunFolder::readSplit(*splitRun, dataset);
    if (split.validation.empty()) throw core::InputError(splitRun->string() + ": its split holds no validation cases");
    std::vector<core::DatasetCase> cases;
    for (const std::size_t index : split.validation) cases.push_back(dataset.cases[index]);
    return cases;
}

// 3D cases: predict on the CT exactly as `liverseg predict`, score on the CT's grid.
void scoreVolumes(const std::vector<core::DatasetCase>& cases, const nn::InferenceEngine& engine,
                  const std::vector<std::uint8_t>& liverLabels, const ModelEvaluation& run, Scores& scores) {
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const core::DatasetCase& item = cases[i];
        std::cerr << "evaluate: [" << i + 1 << "/" << cases.size() << "] " << item.id << "\n";
        const core::LoadedCt ct = core::readCt(item.image);
        const core::LabelMap reference = selectLabels(core::readLabelMapOnGrid(item.mask, ct.volume.geometry()), liverLabels);
        const nn::Segmentation segmentation = engine.segment(ct.volume);
        if (run.saveMasks) core::writeLabelMap(segmentation.mask, *run.saveMasks / (item.id + ".nii.gz"));
        scores.add(item.id, core::computeMetrics(segmentation.mask, reference));
    }
}

// 2D pictures: each is prepared as in training and scored on the network's input plane.
void scorePictures(const std::vector<core::DatasetCase>& cases, const core::Dataset& dataset,
                   const nn::InferenceEngine& engine, const std::vector<std::uint8_t>& liverLabels,
                   const ModelEvaluation& run, Scores& scores) {
    core::Dataset selection = dataset;
    selection.cases = cases;
    const nn::Preprocessing& preprocessing = engine.preprocessing();
    const std::vector<int> labels(liverLabels.begin(), liverLabels.end());
    const core::SlicePreparation preparation =
        nn::slicePreparationFor(preprocessing, labels.empty() ? core::LiverLabels() : core::LiverLabels(labels));
    const fs::path cacheFolder = fs::temp_directory_path() / ("liverseg-evaluate-" + std::to_string(::getpid()));
    struct RemoveOnExit {
        fs::path folder;
        ~RemoveOnExit() {
            std::error_code ignored;
            fs::remove_all(folder, ignored);
        }
    } removeCache{cacheFolder};
    const core::SliceCache cache(selection, preparation, cacheFolder);

    const int side = cache.side(), context = preprocessing.sliceContext;
    core::Geometry plane;
    plane.size = {std::size_t(side), std::size_t(side), 1};
    plane.spacing = Eigen::Vector3d(preprocessing.pixelSpacingMm, preprocessing.pixelSpacingMm, 1.0);
    for (std::size_t i = 0; i < cases.size(); ++i) {
        torch::Tensor image = torch::empty({1, context, side, side});
        torch::Tensor mask = torch::empty({side, side});
        cache.readSample(i, 0, context, image.data_ptr<float>(), mask.data_ptr<float>());
        const torch::Tensor decided = engine.logits(image)[0][0].gt(0).to(torch::kUInt8).contiguous();
        core::LabelMap predicted(plane, 0), reference(plane, 0);
        std::memcpy(predicted.voxels().data(), decided.data_ptr<std::uint8_t>(), predicted.voxels().size());
        const torch::Tensor referenceBytes = mask.gt(0.5).to(torch::kUInt8).contiguous();
        std::memcpy(reference.voxels().data(), referenceBytes.data_ptr<std::uint8_t>(), reference.voxels().size());
        if (run.saveMasks) core::writeLabelMap(predicted, *run.saveMasks / (cases[i].id + ".nii.gz"));
        core::SegmentationMetrics metrics = core::computeMetrics(predicted, reference);
        metrics.assd = metrics.mssd = metrics.hd95 = std::nullopt;  // a single plane has no surface
        scores.add(cases[i].id, metrics);
    }
}

Scores scoreModel(const ModelEvaluation& run, const std::vector<std::uint8_t>& liverLabels) {
    nn::LoadedModel model = nn::loadCheckpoint(run.weights);
    core::DatasetOptions datasetOptions;
    datasetOptions.caseMaskName = run.maskName;
    const core::Dataset dataset = core::openDataset(run.data, datasetOptions);
    const std::vector<core::DatasetCase> cases = casesToScore(dataset, run.splitRun);
    if (run.saveMasks) {
        std::error_code error;
        fs::create_directories(*run.saveMasks, error);
        if (!fs::is_directory(*run.saveMasks)) throw core::InputError(run.saveMasks->string() + ": cannot create the folder");
    }
    std::cerr << "evaluate: " << model.info.config.describe() << " on " << cases.size() << " "
              << (dataset.isTwoDimensional() ? "pictures" : "cases") << " of " << run.data.string() << " ("
              << core::toString(dataset.layout) << ")\n";
    const nn::InferenceEngine engine(model.network, model.info.preprocessing, run.options);
    Scores scores;
    if (dataset.isTwoDimensional()) {
        scorePictures(cases, dataset, engine, liverLabels, run, scores);
    } else {
        scoreVolumes(cases, engine, liverLabels, run, scores);
    }
    return scores;
}

nlohmann::json optionalJson(const std::optional<double>& value) { return value ? nlohmann::json(*value) : nlohmann::json(); }

nlohmann::json caseJson(const CaseScore& score) {
    const core::SegmentationMetrics& m = score.metrics;
    return {{"case", score.name},          {"dice", m.dice},
            {"jaccard", m.jaccard},        {"voe", m.voe},
            {"rvd", optionalJson(m.rvd)},  {"assd_mm", optionalJson(m.assd)},
            {"mssd_mm", optionalJson(m.mssd)}, {"hd95_mm", optionalJson(m.hd95)},
            {"predicted_ml", m.predictedVolumeMl}, {"reference_ml", m.referenceVolumeMl}};
}

struct Summary {
    double mean = 0, median = 0, std = 0;
    std::size_t count = 0;
};

Summary summarise(std::vector<double> values) {
    Summary s;
    s.count = values.size();
    if (values.empty()) return s;
    std::sort(values.begin(), values.end());
    for (double v : values) s.mean += v / double(values.size());
    const std::size_t n = values.size();
    s.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    for (double v : values) s.std += (v - s.mean) * (v - s.mean) / double(n);
    s.std = std::sqrt(s.std);
    return s;
}

using MetricField = std::optional<double> (*)(const core::SegmentationMetrics&);
const std::vector<std::pair<std::string, MetricField>>& metricFields() {
    static const std::vector<std::pair<std::string, MetricField>> fields = {
        {"dice", [](const core::SegmentationMetrics& m) -> std::optional<double> { return m.dice; }},
        {"jaccard", [](const core::SegmentationMetrics& m) -> std::optional<double> { return m.jaccard; }},
        {"voe", [](const core::SegmentationMetrics& m) -> std::optional<double> { return m.voe; }},
        {"rvd", [](const core::SegmentationMetrics& m) { return m.rvd; }},
        {"assd_mm", [](const core::SegmentationMetrics& m) { return m.assd; }},
        {"mssd_mm", [](const core::SegmentationMetrics& m) { return m.mssd; }},
        {"hd95_mm", [](const core::SegmentationMetrics& m) { return m.hd95; }},
        {"predicted_ml", [](const core::SegmentationMetrics& m) -> std::optional<double> { return m.predictedVolumeMl; }},
        {"reference_ml", [](const core::SegmentationMetrics& m) -> std::optional<double> { return m.referenceVolumeMl; }},
    };
    return fields;
}

std::string cell(const std::optional<double>& value, int precision) {
    if (!value) return "n/a";
    std::ostringstream out;
    out << std::fixed << std::setprecision(precision) << *value;
    return out.str();
}

void printTable(const std::vector<CaseScore>& scores, const nlohmann::json& summary) {
    std::cout << std::left << std::setw(28) << "case" << std::right;
    for (const auto& [name, field] : metricFields()) std::cout << std::setw(13) << name;
    std::cout << "\n";
    for (const auto& score : scores) {
        std::cout << std::left << std::setw(28) << score.name.substr(0, 27) << std::right;
        for (const auto& [name, field] : metricFields()) std::cout << std::setw(13) << cell(field(score.metrics), 4);
        std::cout << "\n";
    }
    for (const char* statistic : {"mean", "median", "std"}) {
        std::cout << std::left << std::setw(28) << statistic << std::right;
        for (const auto& [name, field] : metricFields()) {
            const auto& value = summary[name][statistic];
            std::cout << std::setw(13) << (value.is_null() ? std::string("n/a") : cell(value.get<double>(), 4));
        }
        std::cout << "\n";
    }
    std::cout << "global Dice (all voxels pooled): " << std::fixed << std::setprecision(4)
              << summary["global_dice"].get<double>() << "\n";
}

void writeCsv(const fs::path& path, const std::vector<CaseScore>& scores) {
    core::writeAtomically(path, [&](const fs::path& temporary) {
        std::ofstream out(temporary);
        out << "case";
        for (const auto& [name, field] : metricFields()) out << "," << name;
        out << "\n";
        for (const auto& score : scores) {
            out << score.name;
            for (const auto& [name, field] : metricFields()) {
                const auto value = field(score.metrics);
                out << "," << (value ? cell(value, 6) : "");
            }
            out << "\n";
        }
        if (!out) throw core::InputError(path.string() + ": cannot write");
    });
}

}  // namespace

int runEvaluate(Arguments& arguments) {
    if (arguments.wantsHelp()) {
        std::cout << kHelp;
        return 0;
    }
    const auto pred = arguments.value("--pred");
    const auto ref = arguments.value("--ref");
    const auto weights = arguments.value("--weights");
    const auto data = arguments.value("--data");
    const std::vector<std::uint8_t> liverLabels = parseLabels(arguments.value("--liver-labels").value_or(""));
    const auto csvPath = arguments.value("--csv");
    const auto jsonPath = arguments.value("--json");
    const bool scoresFiles = pred || ref;
    if (scoresFiles == bool(weights || data)) {
        throw UsageError("evaluate: give --pred and --ref, or --weights and --data");
    }
    Scores evaluation;
    if (scoresFiles) {
        if (!pred || !ref) throw UsageError("evaluate: --pred and --ref go together");
        arguments.positionals(0, 0);
        evaluation = scoreMaskFiles(*pred, *ref, liverLabels);
    } else {
        if (!weights || !data) throw UsageError("evaluate: --weights and --data go together");
        ModelEvaluation run;
        run.weights = *weights;
        run.data = *data;
        run.maskName = arguments.value("--mask-name").value_or("");
        if (const auto split = arguments.value("--split")) run.splitRun = fs::path(*split);
        if (const auto save = arguments.value("--save-masks")) run.saveMasks = fs::path(*save);
        run.options.threads = arguments.integer("--threads", 0, 0, 1024);
        run.options.precision = nn::parsePrecision(arguments.value("--precision").value_or("fp32"));
        run.options.device = nn::parseDeviceChoice(arguments.value("--device").value_or("auto"));
        arguments.positionals(0, 0);
        evaluation = scoreModel(run, liverLabels);
    }
    const std::vector<CaseScore>& scores = evaluation.cases;
    const std::size_t pooledIntersection = evaluation.pooledIntersection, pooledSizes = evaluation.pooledSizes;

    nlohmann::json summary;
    for (const auto& [name, field] : metricFields()) {
        std::vector<double> values;
        for (const auto& score : scores) {
            if (const auto value = field(score.metrics)) values.push_back(*value);
        }
        const Summary s = summarise(values);
        summary[name] = s.count == 0 ? nlohmann::json{{"mean", nullptr}, {"median", nullptr}, {"std", nullptr}, {"cases", 0}}
                                     : nlohmann::json{{"mean", s.mean}, {"median", s.median}, {"std", s.std}, {"cases", s.count}};
    }
    summary["global_dice"] = pooledSizes == 0 ? 1.0 : 2.0 * double(pooledIntersection) / double(pooledSizes);

    printTable(scores, summary);
    if (csvPath) writeCsv(*csvPath, scores);
    if (jsonPath) {
        nlohmann::json document{{"cases", nlohmann::json::array()}, {"summary", summary}};
        for (const auto& score : scores) document["cases"].push_back(caseJson(score));
        core::writeAtomically(*jsonPath, [&](const fs::path& temporary) {
            std::ofstream out(temporary);
            out << document.dump(2) << "\n";
            if (!out) throw core::InputError(*jsonPath + ": cannot write");
        });
    }
    return 0;
}

}  // namespace liverseg::app
