#pragma once
#include <optional>
#include <string>
#include <vector>

namespace liverseg::core {

struct DicomSeries {
    std::string uid;
    std::string modality;     // (0008,0060), empty when unreadable
    std::string description;  // (0008,103E)
    std::vector<std::string> files;  // sorted by slice position
};

// Where a CT came from and what the reader had to decide or warn about.
struct CtSource {
    std::string format;  // "NIfTI", "NRRD", "MetaImage", "DICOM"
    std::optional<DicomSeries> series;      // DICOM only: the series that was read
    std::vector<DicomSeries> otherSeries;   // DICOM only: series in the folder not read
    std::vector<std::string> notes;         // e.g. which series was picked and why
    std::vector<std::string> warnings;      // e.g. non-CT modality
};

}  // namespace liverseg::core
