#pragma once
// Preprocessed training slices on disk, memory-mapped read-only.
//
// Each case is prepared once into its own cache file: axial slices in radiological view
// (the orientation the inference engine gives the network), the HU window mapped to [0,1]
// and stored as uint8 (round(255 x value): 1.2 HU per step for a 300 HU window, below CT
// noise), resampled in-plane with resamplePlane to the model's pixel spacing and centred in
// a side x side plane (cropped where larger, zero = the window's low end where smaller);
// the mask as 0/1 uint8 on the same plane (liver labels -> 1, resampled, >= 0.5).
// 2D pictures are already windowed grey: grey / 255 is the value, and a picture of another
// size than side x side is rescaled to it (it is taken to cover side x spacing mm).
//
// A file is reused when its key (the preparation settings, the format version and the
// source files' paths, sizes and modification times) matches, and rebuilt otherwise;
// files are written atomically. Reading touches only the pages of the slices read, and
// pages beyond a resident budget are handed back to the kernel (madvise), so resident
// memory stays bounded whatever the dataset size.
#include "core/Dataset.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace liverseg::core {

struct SlicePreparation {
    double windowLowHu = -100.0;   // HU mapped to 0
    double windowHighHu = 200.0;   // HU mapped to 1
    double pixelSpacingMm = 1.5;   // in-plane spacing of the prepared planes
    int side = 256;                // prepared planes are side x side
    LiverLabels liverLabels;

    // Throws InputError for an empty window, a non-positive spacing or side < 8.
    void validate() const;
    // Text naming every setting that changes the prepared voxels.
    std::string key() const;
};

// One case's prepared slices, mapped read-only. Move-only.
class CachedCase {
public:
    // Maps `file`; throws InputError when it is not a complete cache file.
    explicit CachedCase(const std::filesystem::path& file);
    ~CachedCase();
    CachedCase(CachedCase&& other) noexcept;
    CachedCase& operator=(CachedCase&& other) noexcept;
    CachedCase(const CachedCase&) = delete;
    CachedCase& operator=(const CachedCase&) = delete;

    const std::filesystem::path& file() const { return file_; }
    const std::string& key() const { return key_; }
    std::size_t sliceCount() const { return sliceCount_; }
    int side() const { return side_; }
    std::size_t planeBytes() const { return std::size_t(side_) * std::size_t(side_); }
    double sliceSpacingMm() const { return sliceSpacingMm_; }

    // side x side values, row-major; z < sliceCount().
    const std::uint8_t* image(std::size_t z) const;
    const std::uint8_t* mask(std::size_t z) const;
    // Liver pixels of slice z's mask (kept in the header: no data page is touched).
    std::uint32_t liverPixels(std::size_t z) const { return liverPixels_[z]; }

    // Drops this mapping's pages from the process (they stay in the page cache).
    void releaseResidentPages() const;

private:
    std::filesystem::path file_;
    const std::uint8_t* mapping_ = nullptr;
    std::size_t mappingBytes_ = 0;
    std::size_t dataOffset_ = 0;
    std::size_t sliceCount_ = 0;
    int side_ = 0;
    double sliceSpacingMm_ = 0;
    std::string key_;
    std::vector<std::uint32_t> liverPixels_;
};

// The key a case's cache file must carry: preparation + source files' identity.
std::string cacheKeyFor(const DatasetCase& item, const SlicePreparation& preparation);
// Where a case's cache file lives in `folder`.
std::filesystem::path cacheFileFor(const DatasetCase& item, const std::filesystem::path& folder);
// Prepares one case into `file` atomically (reads the sources; InputError for a mask off
// the CT grid, a non-axial CT, a multi-label mask with default liver labels, ...).
void buildCachedCase(const DatasetCase& item, bool twoDimensional, const SlicePreparation& preparation,
                     const std::filesystem::path& file);

struct SliceCacheProgress {
    // After each case: cases done, total, the case, whether it was (re)built.
    std::function<void(std::size_t done, std::size_t total, const DatasetCase& item, bool built)> onCase;
    // Checked between cases; true -> core::Cancelled (finished files stay valid).
    std::function<bool()> cancelled;
};

class SliceCache {
public:
    static constexpr std::size_t kDefaultResidentBudget = std::size_t(512) << 20;

    // Opens or prepares every case of `dataset` (in its order) under `folder` (created).
    SliceCache(const Dataset& dataset, SlicePreparation preparation, const std::filesystem::path& folder,
               const SliceCacheProgress& progress = {});
    ~SliceCache();

    const SlicePreparation& preparation() const { return preparation_; }
    const std::filesystem::path& folder() const { return folder_; }
    std::size_t caseCount() const { return cases_.size(); }
    const CachedCase& caseAt(std::size_t index) const { return cases_[index]; }
    std::size_t totalSlices() const;
    std::size_t builtCount() const { return built_; }
    std::size_t reusedCount() const { return reused_; }
    int side() const { return preparation_.side; }

    // Slice `z` of case `caseIndex` with its neighbours: `context` planes (centre in the
    // middle; indices clamped at the volume's ends, so edge slices repeat and a 2D picture
    // is its own neighbour) as floats in [0,1] into image[context * side * side], and the
    // centre's mask as 0/1 floats into mask[side * side] (skipped when null).
    void readSample(std::size_t caseIndex, std::size_t z, int context, float* image, float* mask) const;

    // Bytes of mapped pages read since they were last released, beyond which the pages of
    // the least recently read cases are released. The kernel maps neighbouring pages too
    // (fault-around), so up to about twice this is resident. Thread-safe with readSample.
    void setResidentBudget(std::size_t bytes);
    std::size_t residentBudget() const;

private:
    void account(std::size_t caseIndex, std::size_t bytes) const;

    SlicePreparation preparation_;
    std::filesystem::path folder_;
    std::vector<CachedCase> cases_;
    std::size_t built_ = 0;
    std::size_t reused_ = 0;

    mutable std::mutex residencyMutex_;
    std::size_t residentBudget_ = kDefaultResidentBudget;
    mutable std::vector<std::size_t> touchedBytes_;
    mutable std::vector<std::uint64_t> lastUse_;
    mutable std::size_t touchedTotal_ = 0;
    mutable std::uint64_t useCounter_ = 0;
};

}  // namespace liverseg::core
