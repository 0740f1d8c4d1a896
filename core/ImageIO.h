#pragma once
#include "core/Image.h"
#include "core/ImageSource.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace liverseg::core {

struct LoadedCt {
    CtVolume volume;
    CtSource source;
};

struct CtReadOptions {
    std::string seriesUid;  // DICOM: read this series instead of choosing one
};

// Reads a CT from NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), a
// DICOM series folder or one file of a DICOM series. Values are converted to int16 HU
// (DICOM rescale slope/intercept and NIfTI scaling applied). Throws InputError with one
// line naming the file and the problem for anything unusable.
LoadedCt readCt(const std::filesystem::path& path, const CtReadOptions& options = {});

// Reads a label map (any integer or integral-valued image with values 0..255).
LabelMap readLabelMap(const std::filesystem::path& path);

// Reads a label map and requires it to lie on exactly `ctGeometry`'s grid.
LabelMap readLabelMapOnGrid(const std::filesystem::path& path, const Geometry& ctGeometry);

// Throws InputError if `labels` does not lie on `ctGeometry`'s grid.
void requireSameGrid(const Geometry& labelGeometry, const Geometry& ctGeometry,
                     const std::string& labelName);

// The DICOM series in a folder (not recursive), largest first.
std::vector<DicomSeries> listDicomSeries(const std::filesystem::path& folder);

// Atomic writers; the format follows the extension (.nii, .nii.gz, .nrrd, .mha).
void writeLabelMap(const LabelMap& labels, const std::filesystem::path& path);
void writeCtVolume(const CtVolume& volume, const std::filesystem::path& path);

bool isSupportedImageExtension(const std::filesystem::path& path);

}  // namespace liverseg::core
