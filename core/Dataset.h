#pragma once
// Training and evaluation datasets: which layout a folder holds, its cases (CT + mask, or a
// 2D picture + mask), which mask values count as liver, and seeded splits by case.
//
// Layouts, tried in this order:
//   Decathlon  imagesTr/ + labelsTr/ (Medical Segmentation Decathlon and nnU-Net):
//              imagesTr/CASE_0000.nii.gz (nnU-Net, channel 0 is the CT) or
//              imagesTr/CASE.nii.gz (MSD), with labelsTr/CASE.nii.gz.
//   Slices2D   images/ + masks/ holding .png/.jpg/.jpeg pictures with the same names (8-bit
//              grey; a mask pixel is liver when >= 128, as JPEG blurs its edges). Names of
//              the form [flipped_|mirrored_]VOLUME_SLICE.ext are grouped by VOLUME for splits.
//   LiTS       volume-N.nii[.gz] + segmentation-N.nii[.gz], in the folder or its direct
//              subfolders (the challenge's "Training Batch 1/2").
//   CasePairs  a folder per case holding ct.<ext> and a mask named liver.<ext> (what
//              `liverseg phantom` writes), mask.<ext>, segmentation.<ext> or label(s).<ext>;
//              the folder itself may be such a case.
//   FilePairs  files CASE.<ext> + CASE_mask.<ext> (or _seg, _label, _labels, _liver) side by
//              side; <ext> is any 3D format liverseg reads (.nii.gz, .nii, .nrrd, .mha, ...).
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace liverseg::core {

enum class DatasetLayout { Decathlon, Slices2D, Lits, CasePairs, FilePairs };
std::string toString(DatasetLayout layout);  // "decathlon", "2d", "lits", "case-folders", "file-pairs"

struct DatasetCase {
    std::string id;                  // unique in the dataset, e.g. "volume-3", "liver_7"
    std::string group;               // the unit of splits: the volume (2D) or the case itself
    std::filesystem::path image;     // CT volume, or a 2D picture
    std::filesystem::path mask;      // on the image's grid
};

struct Dataset {
    std::filesystem::path root;
    DatasetLayout layout = DatasetLayout::CasePairs;
    std::vector<DatasetCase> cases;  // sorted by id
    std::vector<std::string> notes;  // what was skipped and why

    bool isTwoDimensional() const { return layout == DatasetLayout::Slices2D; }
    std::size_t groupCount() const;
};

struct DatasetOptions {
    // CasePairs: the mask's file name in every case folder (e.g. "labels117.nii.gz"),
    // instead of looking for liver/mask/segmentation/label(s).<ext>.
    std::string caseMaskName;
};

// Detects the layout and lists the cases. Throws InputError (one line) for a missing,
// empty or unrecognised folder, a CT without its mask, a mask without its CT, or a 2D
// picture without its mask. Grids are checked when a case is read (SliceCache).
Dataset openDataset(const std::filesystem::path& folder, const DatasetOptions& options = {});

// Which values of a label map count as liver. Default: every non-zero value (binary masks,
// LiTS/MSD liver + tumour). TotalSegmentator's multi-organ maps need {5}.
class LiverLabels {
public:
    LiverLabels();  // every non-zero value
    explicit LiverLabels(const std::vector<int>& values);
    // "1,2" -> {1, 2}; throws InputError for anything but a list of values 1..255.
    static LiverLabels parse(const std::string& text);

    bool isLiver(std::uint8_t value) const { return liver_[value]; }
    bool isDefault() const { return isDefault_; }
    std::string describe() const;  // "non-zero" or "1,2"

private:
    std::array<bool, 256> liver_{};
    bool isDefault_ = true;
};

// A split by group: every case of a group lands on the same side. Groups are shuffled with
// `seed` (the same on every platform) and round(fraction x groups) of them validate, at
// least one when fraction > 0 and at least one group is left to train on. Indices into
// dataset.cases, ascending.
struct DatasetSplit {
    std::vector<std::size_t> training;
    std::vector<std::size_t> validation;
    std::uint64_t seed = 0;
    double validationFraction = 0;
};
DatasetSplit splitByGroup(const Dataset& dataset, double validationFraction, std::uint64_t seed);

// The group a 2D picture belongs to: "VOLUME" for "[flipped_|mirrored_]VOLUME_SLICE", the
// name without extension otherwise.
std::string volumeIdOfSliceName(const std::string& fileName);

}  // namespace liverseg::core
