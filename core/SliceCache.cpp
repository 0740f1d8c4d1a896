#include "core/SliceCache.h"

#include "core/AtomicFile.h"
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/SliceResampler.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <optional>
#include <utility>
#include <cctype>
#include <cstdio>
#include <set>
#include <sstream>

namespace liverseg::core {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'L', 'S', 'G', 'S', 'L', 'I', 'C', 'E'};
constexpr std::uint32_t kFormatVersion = 1;
constexpr std::size_t kPageAlignment = 4096;

// The file starts with this header, then the key text, then uint32 liver pixel counts per
// slice, padding to dataOffset, all images (slice-major), then all masks.
struct FileHeader {
    char magic[8];
    std::uint32_t version;
    std::uint32_t side;
    std::uint64_t sliceCount;
    std::uint64_t dataOffset;
    std::uint64_t keyLength;
    double sliceSpacingMm;
};

std::size_t alignUp(std::size_t value, std::size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

std::uint64_t fnv1a(const std::string& text) {
    std::uint64_t hash = 1469598103934665603ull;
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash;
}

std::string fileIdentity(const fs::path& path) {
    std::error_code error;
    const fs::path absolute = fs::absolute(path, error).lexically_normal();
    const auto size = fs::file_size(path, error);
    if (error) throw InputError(path.string() + ": cannot read (" + error.message() + ")");
    const auto modified = fs::last_write_time(path, error).time_since_epoch().count();
    std::ostringstream out;
    out << absolute.string() << " size=" << size << " mtime=" << modified;
    return out.str();
}

// A prepared case before it is written.
struct PreparedSlices {
    int side = 0;
    double sliceSpacingMm = 0;
    std::vector<std::uint8_t> images;
    std::vector<std::uint8_t> masks;
    std::size_t sliceCount() const { return side == 0 ? 0 : images.size() / (std::size_t(side) * std::size_t(side)); }
};

// Copies a w x h plane centred into a side x side plane (crop where larger, `fill` where smaller).
void placeCentred(const Plane& plane, int side, float fill, std::vector<float>& out) {
    out.assign(std::size_t(side) * std::size_t(side), fill);
    const auto offsetX = (std::int64_t(side) - std::int64_t(plane.width)) / 2;
    const auto offsetY = (std::int64_t(side) - std::int64_t(plane.height)) / 2;
    for (std::int64_t y = 0; y < side; ++y) {
        const std::int64_t sourceY = y - offsetY;
        if (sourceY < 0 || sourceY >= std::int64_t(plane.height)) continue;
        for (std::int64_t x = 0; x < side; ++x) {
            const std::int64_t sourceX = x - offsetX;
            if (sourceX < 0 || sourceX >= std::int64_t(plane.width)) continue;
            out[std::size_t(y * side + x)] = plane.pixels[std::size_t(sourceY) * plane.width + std::size_t(sourceX)];
        }
    }
}

void appendQuantized(const std::vector<float>& values, std::vector<std::uint8_t>& out) {
    for (float value : values) out.push_back(std::uint8_t(std::lround(std::clamp(value, 0.0f, 1.0f) * 255.0f)));
}

void appendThresholded(const std::vector<float>& values, std::vector<std::uint8_t>& out) {
    for (float value : values) out.push_back(value >= 0.5f ? 1 : 0);
}

AxialView requireAxialView(const Geometry& geometry, const fs::path& path) {
    const std::optional<AxialView> view = axialView(geometry.direction);
    if (!view) {
        throw InputError(path.string() + ": stored as " + orientationCode(geometry.direction) +
                         " slices, not axial; reorient it (e.g. to LPS or RAS) to train on it");
    }
    return *view;
}

void requireLiverLabelsChosen(const LabelMap& labels, const SlicePreparation& preparation, const fs::path& path) {
    if (!preparation.liverLabels.isDefault()) return;
    std::set<int> values;
    for (std::uint8_t value : labels.voxels()) {
        if (value != 0) values.insert(value);
        if (values.size() > 2) break;
    }
    if (values.size() > 2) {
        throw InputError(path.string() + ": mask holds more than two label values (a multi-organ map?); "
                                         "say which values are liver (--liver-labels, e.g. 5 for TotalSegmentator)");
    }
}

PreparedSlices prepareVolume(const DatasetCase& item, const SlicePreparation& preparation) {
    const LoadedCt loaded = readCt(item.image);
    const CtVolume& ct = loaded.volume;
    const LabelMap labels = readLabelMapOnGrid(item.mask, ct.geometry());
    requireLiverLabelsChosen(labels, preparation, item.mask);
    const Geometry& geometry = ct.geometry();
    const AxialView view = requireAxialView(geometry, item.image);
    const auto [nx, ny, nz] = ct.size();
    const std::size_t width = resampledLength(nx, geometry.spacing[0], preparation.pixelSpacingMm);
    const std::size_t height = resampledLength(ny, geometry.spacing[1], preparation.pixelSpacingMm);
    const float low = float(preparation.windowLowHu);
    const float scale = float(1.0 / (preparation.windowHighHu - preparation.windowLowHu));

    PreparedSlices prepared;
    prepared.side = preparation.side;
    prepared.sliceSpacingMm = geometry.spacing[2];
    const std::size_t planeBytes = std::size_t(preparation.side) * std::size_t(preparation.side);
    prepared.images.reserve(planeBytes * nz);
    prepared.masks.reserve(planeBytes * nz);
    Plane image{nx, ny, std::vector<float>(nx * ny)}, mask{nx, ny, std::vector<float>(nx * ny)};
    std::vector<float> placed;
    for (std::size_t z = 0; z < nz; ++z) {
        const std::size_t sourceZ = view.flipSlices ? nz - 1 - z : z;
        const std::int16_t* hu = ct.slice(sourceZ);
        const std::uint8_t* label = labels.slice(sourceZ);
        for (std::size_t y = 0; y < ny; ++y) {
            const std::size_t sourceY = view.flipRows ? ny - 1 - y : y;
            for (std::size_t x = 0; x < nx; ++x) {
                const std::size_t source = sourceY * nx + (view.flipColumns ? nx - 1 - x : x);
                image.pixels[y * nx + x] = std::clamp((float(hu[source]) - low) * scale, 0.0f, 1.0f);
                mask.pixels[y * nx + x] = preparation.liverLabels.isLiver(label[source]) ? 1.0f : 0.0f;
            }
        }
        placeCentred(resamplePlane(image, width, height), preparation.side, 0.0f, placed);
        appendQuantized(placed, prepared.images);
        placeCentred(resamplePlane(mask, width, height), preparation.side, 0.0f, placed);
        appendThresholded(placed, prepared.masks);
    }
    return prepared;
}

PreparedSlices preparePicture(const DatasetCase& item, const SlicePreparation& preparation) {
    const Picture picture = readGreyPicture(item.image);
    const Picture maskPicture = readGreyPicture(item.mask);
    if (maskPicture.width != picture.width || maskPicture.height != picture.height) {
        throw InputError(item.mask.string() + ": mask is " + std::to_string(maskPicture.width) + "x" +
                         std::to_string(maskPicture.height) + " but its picture is " + std::to_string(picture.width) +
                         "x" + std::to_string(picture.height));
    }
    Plane image{picture.width, picture.height, std::vector<float>(picture.pixels.size())};
    Plane mask{picture.width, picture.height, std::vector<float>(picture.pixels.size())};
    for (std::size_t i = 0; i < picture.pixels.size(); ++i) {
        image.pixels[i] = float(picture.pixels[i]) / 255.0f;
        mask.pixels[i] = maskPicture.pixels[i] >= 128 ? 1.0f : 0.0f;  // JPEG blurs mask edges
    }
    const auto side = std::size_t(preparation.side);
    PreparedSlices prepared;
    prepared.side = preparation.side;
    prepared.sliceSpacingMm = preparation.pixelSpacingMm;
    appendQuantized(resamplePlane(image, side, side).pixels, prepared.images);
    appendThresholded(resamplePlane(mask, side, side).pixels, prepared.masks);
    return prepared;
}

void writeCacheFile(const fs::path& file, const std::string& key, const PreparedSlices& prepared) {
    const std::size_t slices = prepared.sliceCount();
    const std::size_t planeBytes = std::size_t(prepared.side) * std::size_t(prepared.side);
    std::vector<std::uint32_t> liverPixels(slices);
    for (std::size_t z = 0; z < slices; ++z) {
        const auto begin = prepared.masks.begin() + std::ptrdiff_t(z * planeBytes);
        liverPixels[z] = std::uint32_t(std::count(begin, begin + std::ptrdiff_t(planeBytes), std::uint8_t(1)));
    }
    FileHeader header{};
    std::memcpy(header.magic, kMagic, sizeof kMagic);
    header.version = kFormatVersion;
    header.side = std::uint32_t(prepared.side);
    header.sliceCount = slices;
    header.keyLength = key.size();
    header.sliceSpacingMm = prepared.sliceSpacingMm;
    const std::size_t metadataBytes = sizeof header + key.size() + slices * sizeof(std::uint32_t);
    header.dataOffset = alignUp(metadataBytes, kPageAlignment);

    writeAtomically(file, [&](const fs::path& temporary) {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(&header), sizeof header);
        out.write(key.data(), std::streamsize(key.size()));
        out.write(reinterpret_cast<const char*>(liverPixels.data()), std::streamsize(slices * sizeof(std::uint32_t)));
        const std::string padding(header.dataOffset - metadataBytes, '\0');
        out.write(padding.data(), std::streamsize(padding.size()));
        out.write(reinterpret_cast<const char*>(prepared.images.data()), std::streamsize(prepared.images.size()));
        out.write(reinterpret_cast<const char*>(prepared.masks.data()), std::streamsize(prepared.masks.size()));
        out.flush();
        if (!out) throw InputError(file.string() + ": cannot write the slice cache (disk full or no permission?)");
    });
}

}  // namespace

// --- SlicePreparation ---------------------------------------------------------------------

void SlicePreparation::validate() const {
    if (!(windowHighHu > windowLowHu)) throw InputError("slice preparation: the HU window is empty (high <= low)");
    if (!(pixelSpacingMm > 0) || !std::isfinite(pixelSpacingMm)) {
        throw InputError("slice preparation: pixel spacing must be positive");
    }
    if (side < 8 || side > 4096) throw InputError("slice preparation: plane side must be from 8 to 4096 pixels");
}

std::string SlicePreparation::key() const {
    std::ostringstream out;
    out.precision(17);
    out << "format=" << kFormatVersion << " window=" << windowLowHu << "," << windowHighHu
        << " spacing=" << pixelSpacingMm << " side=" << side << " liver=" << liverLabels.describe();
    return out.str();
}

std::string cacheKeyFor(const DatasetCase& item, const SlicePreparation& preparation) {
    return preparation.key() + "\ncase=" + item.id + "\nimage=" + fileIdentity(item.image) +
           "\nmask=" + fileIdentity(item.mask);
}

fs::path cacheFileFor(const DatasetCase& item, const fs::path& folder) {
    std::string name = item.id;
    for (char& c : name) {
        if (!std::isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.') c = '_';
    }
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx",
                  (unsigned long long)fnv1a(fs::absolute(item.image).lexically_normal().string()));
    return folder / (name.substr(0, 80) + "-" + hash + ".slices");
}

void buildCachedCase(const DatasetCase& item, bool twoDimensional, const SlicePreparation& preparation,
                     const fs::path& file) {
    preparation.validate();
    const PreparedSlices prepared = twoDimensional ? preparePicture(item, preparation) : prepareVolume(item, preparation);
    writeCacheFile(file, cacheKeyFor(item, preparation), prepared);
}

// --- CachedCase -------------------------------------------------------------------------

CachedCase::CachedCase(const fs::path& file) : file_(file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(file.string() + ": cannot open the slice cache file");
    struct stat status {};
    if (::fstat(fd, &status) != 0 || std::size_t(status.st_size) < sizeof(FileHeader)) {
        ::close(fd);
        throw InputError(file.string() + ": not a slice cache file (too short)");
    }
    mappingBytes_ = std::size_t(status.st_size);
    void* mapped = ::mmap(nullptr, mappingBytes_, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (mapped == MAP_FAILED) throw InputError(file.string() + ": cannot map the slice cache file");
    mapping_ = static_cast<const std::uint8_t*>(mapped);

    FileHeader header{};
    std::memcpy(&header, mapping_, sizeof header);
    const auto fail = [&](const std::string& problem) {
        ::munmap(const_cast<std::uint8_t*>(mapping_), mappingBytes_);
        mapping_ = nullptr;
        throw InputError(file.string() + ": " + problem);
    };
    if (std::memcmp(header.magic, kMagic, sizeof kMagic) != 0) fail("not a slice cache file");
    if (header.version != kFormatVersion) fail("slice cache of another format version");
    const std::size_t planeBytes = std::size_t(header.side) * header.side;
    const std::size_t metadataBytes = sizeof header + header.keyLength + header.sliceCount * sizeof(std::uint32_t);
    if (header.side == 0 || header.sliceCount == 0 || header.dataOffset < metadataBytes ||
        header.dataOffset + 2 * planeBytes * header.sliceCount != mappingBytes_) {
        fail("truncated or inconsistent slice cache file");
    }
    side_ = int(header.side);
    sliceCount_ = header.sliceCount;
    dataOffset_ = header.dataOffset;
    sliceSpacingMm_ = header.sliceSpacingMm;
    key_.assign(reinterpret_cast<const char*>(mapping_ + sizeof header), header.keyLength);
    liverPixels_.resize(sliceCount_);
    std::memcpy(liverPixels_.data(), mapping_ + sizeof header + header.keyLength, sliceCount_ * sizeof(std::uint32_t));
    ::madvise(const_cast<std::uint8_t*>(mapping_), mappingBytes_, MADV_RANDOM);
}

CachedCase::~CachedCase() {
    if (mapping_) ::munmap(const_cast<std::uint8_t*>(mapping_), mappingBytes_);
}

CachedCase::CachedCase(CachedCase&& other) noexcept { *this = std::move(other); }

CachedCase& CachedCase::operator=(CachedCase&& other) noexcept {
    if (this != &other) {
        if (mapping_) ::munmap(const_cast<std::uint8_t*>(mapping_), mappingBytes_);
        file_ = std::move(other.file_);
        mapping_ = std::exchange(other.mapping_, nullptr);
        mappingBytes_ = std::exchange(other.mappingBytes_, 0);
        dataOffset_ = other.dataOffset_;
        sliceCount_ = other.sliceCount_;
        side_ = other.side_;
        sliceSpacingMm_ = other.sliceSpacingMm_;
        key_ = std::move(other.key_);
        liverPixels_ = std::move(other.liverPixels_);
    }
    return *this;
}

const std::uint8_t* CachedCase::image(std::size_t z) const { return mapping_ + dataOffset_ + z * planeBytes(); }

const std::uint8_t* CachedCase::mask(std::size_t z) const {
    return mapping_ + dataOffset_ + (sliceCount_ + z) * planeBytes();
}

void CachedCase::releaseResidentPages() const {
    if (mapping_) ::madvise(const_cast<std::uint8_t*>(mapping_), mappingBytes_, MADV_DONTNEED);
}

// --- SliceCache ---------------------------------------------------------------------------

SliceCache::SliceCache(const Dataset& dataset, SlicePreparation preparation, const fs::path& folder,
                       const SliceCacheProgress& progress)
    : preparation_(std::move(preparation)), folder_(folder) {
    preparation_.validate();
    std::error_code error;
    fs::create_directories(folder_, error);
    if (!fs::is_directory(folder_)) throw InputError(folder_.string() + ": cannot create the slice cache folder");
    cases_.reserve(dataset.cases.size());
    for (std::size_t i = 0; i < dataset.cases.size(); ++i) {
        if (progress.cancelled && progress.cancelled()) throw Cancelled();
        const DatasetCase& item = dataset.cases[i];
        const fs::path file = cacheFileFor(item, folder_);
        const std::string key = cacheKeyFor(item, preparation_);
        bool built = false;
        std::optional<CachedCase> cached;
        if (fs::exists(file)) {
            try {
                cached.emplace(file);
                if (cached->key() != key) cached.reset();
            } catch (const InputError&) {
                cached.reset();  // a damaged or old-format file is simply rebuilt
            }
        }
        if (!cached) {
            buildCachedCase(item, dataset.isTwoDimensional(), preparation_, file);
            cached.emplace(file);
            built = true;
        }
        cases_.push_back(std::move(*cached));
        (built ? built_ : reused_) += 1;
        if (progress.onCase) progress.onCase(i + 1, dataset.cases.size(), item, built);
    }
    touchedBytes_.assign(cases_.size(), 0);
    lastUse_.assign(cases_.size(), 0);
}

SliceCache::~SliceCache() = default;

std::size_t SliceCache::totalSlices() const {
    return std::accumulate(cases_.begin(), cases_.end(), std::size_t(0),
                           [](std::size_t sum, const CachedCase& item) { return sum + item.sliceCount(); });
}

void SliceCache::readSample(std::size_t caseIndex, std::size_t z, int context, float* image, float* mask) const {
    const CachedCase& item = cases_.at(caseIndex);
    if (z >= item.sliceCount()) throw std::out_of_range("SliceCache::readSample: slice out of range");
    const std::size_t planeBytes = item.planeBytes();
    const std::int64_t last = std::int64_t(item.sliceCount()) - 1;
    constexpr float kScale = 1.0f / 255.0f;
    for (int channel = 0; channel < context; ++channel) {
        const auto neighbour = std::clamp<std::int64_t>(std::int64_t(z) - context / 2 + channel, 0, last);
        const std::uint8_t* source = item.image(std::size_t(neighbour));
        float* target = image + std::size_t(channel) * planeBytes;
        for (std::size_t i = 0; i < planeBytes; ++i) target[i] = float(source[i]) * kScale;
    }
    if (mask) {
        const std::uint8_t* source = item.mask(z);
        for (std::size_t i = 0; i < planeBytes; ++i) mask[i] = float(source[i]);
    }
    account(caseIndex, planeBytes * std::size_t(context + (mask ? 1 : 0)));
}

void SliceCache::setResidentBudget(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(residencyMutex_);
    residentBudget_ = bytes;
}

std::size_t SliceCache::residentBudget() const {
    std::lock_guard<std::mutex> lock(residencyMutex_);
    return residentBudget_;
}

void SliceCache::account(std::size_t caseIndex, std::size_t bytes) const {
    std::lock_guard<std::mutex> lock(residencyMutex_);
    touchedBytes_[caseIndex] += bytes;
    touchedTotal_ += bytes;
    lastUse_[caseIndex] = ++useCounter_;
    if (touchedTotal_ <= residentBudget_) return;
    // Release the least recently read cases until half the budget is left.
    std::vector<std::size_t> order(cases_.size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return lastUse_[a] < lastUse_[b]; });
    for (std::size_t index : order) {
        if (touchedTotal_ <= residentBudget_ / 2) break;
        if (touchedBytes_[index] == 0) continue;
        cases_[index].releaseResidentPages();
        touchedTotal_ -= touchedBytes_[index];
        touchedBytes_[index] = 0;
    }
}

}  // namespace liverseg::core
