#include "app/Commands.h"
#include "core/ImageIO.h"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>

namespace liverseg::app {
namespace {

const char* kHelp = R"(usage: liverseg info PATH [--json] [--series UID]

Describes a CT volume or label map: format, size, spacing, origin, direction and
orientation, value range (HU), and for DICOM the modality, series UID and description.
PATH is a .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd file, a DICOM file, or a DICOM folder
(the CT series with most slices is read; --series UID chooses another).
)";

nlohmann::json vectorJson(const Eigen::Vector3d& v) { return {v[0], v[1], v[2]}; }

nlohmann::json toJson(const std::string& path, const core::LoadedCt& loaded) {
    const core::Geometry& g = loaded.volume.geometry();
    const core::ValueRange range = core::valueRange(loaded.volume);
    nlohmann::json direction = nlohmann::json::array();
    for (int row = 0; row < 3; ++row) direction.push_back({g.direction(row, 0), g.direction(row, 1), g.direction(row, 2)});
    nlohmann::json out = {
        {"path", path},
        {"format", loaded.source.format},
        {"size", {g.size[0], g.size[1], g.size[2]}},
        {"spacing_mm", vectorJson(g.spacing)},
        {"origin_mm", vectorJson(g.origin)},
        {"direction", direction},
        {"orientation", core::orientationCode(g.direction)},
        {"oblique", core::isOblique(g.direction)},
        {"hu_min", range.min},
        {"hu_max", range.max},
        {"notes", loaded.source.notes},
        {"warnings", loaded.source.warnings},
    };
    if (loaded.source.series) {
        const auto& s = *loaded.source.series;
        out["dicom"] = {{"series_uid", s.uid}, {"modality", s.modality}, {"description", s.description},
                        {"files", s.files.size()}};
        nlohmann::json others = nlohmann::json::array();
        for (const auto& other : loaded.source.otherSeries) {
            others.push_back({{"series_uid", other.uid}, {"modality", other.modality},
                              {"description", other.description}, {"files", other.files.size()}});
        }
        out["dicom"]["other_series"] = others;
    }
    return out;
}

void printVector(const char* label, const Eigen::Vector3d& v) {
    std::cout << std::setw(13) << std::left << label << v[0] << ", " << v[1] << ", " << v[2] << "\n";
}

void printText(const std::string& path, const core::LoadedCt& loaded) {
    const core::Geometry& g = loaded.volume.geometry();
    const core::ValueRange range = core::valueRange(loaded.volume);
    std::cout << std::setprecision(8);
    std::cout << std::setw(13) << std::left << "path" << path << "\n";
    std::cout << std::setw(13) << "format" << loaded.source.format << "\n";
    std::cout << std::setw(13) << "size" << g.size[0] << " x " << g.size[1] << " x " << g.size[2] << " voxels\n";
    printVector("spacing (mm)", g.spacing);
    printVector("origin (mm)", g.origin);
    for (int row = 0; row < 3; ++row) {
        std::cout << std::setw(13) << (row == 0 ? "direction" : "") << g.direction(row, 0) << ", "
                  << g.direction(row, 1) << ", " << g.direction(row, 2) << "\n";
    }
    std::cout << std::setw(13) << "orientation" << core::orientationCode(g.direction)
              << (core::isOblique(g.direction) ? " (oblique)" : "") << "  (index axes point toward; ITK LPS)\n";
    std::cout << std::setw(13) << "HU range" << range.min << " .. " << range.max << "\n";
    if (loaded.source.series) {
        const auto& s = *loaded.source.series;
        std::cout << std::setw(13) << "modality" << s.modality << "\n";
        std::cout << std::setw(13) << "series UID" << s.uid << "\n";
        std::cout << std::setw(13) << "description" << s.description << "\n";
        for (const auto& other : loaded.source.otherSeries) {
            std::cout << std::setw(13) << "other series" << other.uid << " (" << other.modality << ", "
                      << other.files.size() << " files)\n";
        }
    }
    for (const auto& note : loaded.source.notes) std::cout << "note: " << note << "\n";
}

}  // namespace

int runInfo(Arguments& arguments) {
    if (arguments.wantsHelp()) {
        std::cout << kHelp;
        return 0;
    }
    const bool json = arguments.flag("--json");
    core::CtReadOptions options;
    options.seriesUid = arguments.value("--series").value_or("");
    const std::string path = arguments.positionals(1, 1).front();
    const core::LoadedCt loaded = core::readCt(path, options);
    for (const auto& warning : loaded.source.warnings) std::cerr << "liverseg info: warning: " << warning << "\n";
    if (json) {
        std::cout << toJson(path, loaded).dump(2) << "\n";
    } else {
        printText(path, loaded);
    }
    return 0;
}

}  // namespace liverseg::app
