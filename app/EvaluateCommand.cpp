#include "app/Commands.h"
#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/Metrics.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace liverseg::app {
namespace {

namespace fs = std::filesystem;

const char* kHelp = R"(usage: liverseg evaluate --pred P --ref R [--liver-labels 1,2] [--csv FILE] [--json FILE]

Scores predicted liver masks against reference masks on the same grid. P and R are two
mask files, or two folders whose masks are matched by file name. Per case and summary
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
    const fs::path pred = arguments.required("--pred");
    const fs::path ref = arguments.required("--ref");
    const std::vector<std::uint8_t> liverLabels = parseLabels(arguments.value("--liver-labels").value_or(""));
    const auto csvPath = arguments.value("--csv");
    const auto jsonPath = arguments.value("--json");
    arguments.positionals(0, 0);

    std::vector<CaseScore> scores;
    std::size_t pooledIntersection = 0, pooledSizes = 0;
    for (const auto& [name, paths] : matchCases(pred, ref)) {
        const core::LabelMap reference = selectLabels(core::readLabelMap(paths.second), liverLabels);
        const core::LabelMap predicted = core::readLabelMapOnGrid(paths.first, reference.geometry());
        scores.push_back({name, core::computeMetrics(predicted, reference)});
        pooledIntersection += scores.back().metrics.intersection;
        pooledSizes += scores.back().metrics.predictedVoxels + scores.back().metrics.referenceVoxels;
    }

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
