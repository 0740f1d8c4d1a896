#include "core/NiftiPrecheck.h"

#include "core/Errors.h"

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

namespace liverseg::core {
namespace {

namespace fs = std::filesystem;

constexpr int kNifti1HeaderSize = 348;
constexpr std::int16_t kFloat32 = 16;
constexpr std::int16_t kFloat64 = 64;

[[noreturn]] void fail(const fs::path& path, const std::string& problem) {
    throw InputError(path.string() + ": " + problem);
}

struct GzCloser {
    void operator()(gzFile_s* file) const { gzclose(file); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// gzopen reads plain files transparently, so one reader serves .nii and .nii.gz.
GzFile open(const fs::path& path) {
    GzFile file(gzopen(path.c_str(), "rb"));
    if (!file) fail(path, "cannot be opened for reading");
    return file;
}

// Reads up to `count` bytes; returns how many arrived (short on end of data or corruption).
std::size_t readSome(gzFile_s* file, char* into, std::size_t count, bool& corrupt) {
    std::size_t total = 0;
    while (total < count) {
        const unsigned chunk = unsigned(std::min<std::size_t>(count - total, 1u << 30));
        const int got = gzread(file, into + total, chunk);
        if (got < 0) {
            corrupt = true;
            break;
        }
        if (got == 0) break;
        total += std::size_t(got);
    }
    return total;
}

template <typename T>
T field(const char* header, std::size_t offset, bool swapped) {
    T value;
    std::memcpy(&value, header + offset, sizeof(T));
    if (swapped) {
        char* bytes = reinterpret_cast<char*>(&value);
        for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(bytes[i], bytes[sizeof(T) - 1 - i]);
    }
    return value;
}

struct Nifti1Layout {
    bool swapped = false;
    std::uint64_t voxels = 1;
    std::int16_t datatype = 0;
    std::uint64_t bytesPerVoxel = 0;
    std::uint64_t dataOffset = 0;
};

Nifti1Layout parseHeader(const fs::path& path, const char* header) {
    Nifti1Layout layout;
    const std::int32_t size = field<std::int32_t>(header, 0, false);
    if (size != kNifti1HeaderSize) layout.swapped = true;
    const std::int16_t rank = field<std::int16_t>(header, 40, layout.swapped);
    if (rank < 1 || rank > 7) fail(path, "NIfTI header has an invalid number of dimensions (" + std::to_string(rank) + ")");
    for (int axis = 1; axis <= rank; ++axis) {
        const std::int16_t extent = field<std::int16_t>(header, 40 + 2 * axis, layout.swapped);
        if (extent <= 0) {
            fail(path, "has a zero-sized dimension (axis " + std::to_string(axis - 1) + " has size " +
                           std::to_string(extent) + ")");
        }
        layout.voxels *= std::uint64_t(extent);
    }
    layout.datatype = field<std::int16_t>(header, 70, layout.swapped);
    const std::int16_t bitpix = field<std::int16_t>(header, 72, layout.swapped);
    if (bitpix <= 0 || bitpix % 8 != 0) fail(path, "NIfTI header has an invalid bits-per-voxel (" + std::to_string(bitpix) + ")");
    layout.bytesPerVoxel = std::uint64_t(bitpix / 8);
    const float offset = field<float>(header, 108, layout.swapped);
    layout.dataOffset = std::uint64_t(std::max(352.0f, std::isfinite(offset) ? offset : 352.0f));
    return layout;
}

template <typename T>
void requireFinite(const fs::path& path, const char* data, std::size_t count, std::uint64_t firstIndex) {
    for (std::size_t i = 0; i < count; ++i) {
        T value;
        std::memcpy(&value, data + i * sizeof(T), sizeof(T));
        if (!std::isfinite(value)) {
            fail(path, std::string("contains ") + (std::isnan(value) ? "NaN" : "infinite") + " values (first at voxel " +
                           std::to_string(firstIndex + i) + ")");
        }
    }
}

// Walks the voxel data once: counts it (truncation) and, for float data, checks it is finite.
void scanData(const fs::path& path, gzFile_s* file, const Nifti1Layout& layout, std::uint64_t alreadyRead) {
    bool corrupt = false;
    std::vector<char> skip(layout.dataOffset > alreadyRead ? layout.dataOffset - alreadyRead : 0);
    if (readSome(file, skip.data(), skip.size(), corrupt) != skip.size()) fail(path, "file is truncated inside the header");
    const std::uint64_t expected = layout.voxels * layout.bytesPerVoxel;
    const bool checkFloats = !layout.swapped && (layout.datatype == kFloat32 || layout.datatype == kFloat64);
    const std::size_t chunkVoxels = (std::size_t(4) << 20) / layout.bytesPerVoxel;
    std::vector<char> buffer(chunkVoxels * layout.bytesPerVoxel);
    std::uint64_t seen = 0;
    while (seen < expected) {
        const std::size_t want = std::size_t(std::min<std::uint64_t>(buffer.size(), expected - seen));
        const std::size_t got = readSome(file, buffer.data(), want, corrupt);
        if (checkFloats) {
            const std::uint64_t firstVoxel = seen / layout.bytesPerVoxel;
            if (layout.datatype == kFloat32) requireFinite<float>(path, buffer.data(), got / 4, firstVoxel);
            else requireFinite<double>(path, buffer.data(), got / 8, firstVoxel);
        }
        seen += got;
        if (got < want) break;
    }
    if (seen < expected) {
        std::ostringstream out;
        out << (corrupt ? "compressed data is corrupt or truncated" : "file is truncated") << ": the header promises "
            << expected << " bytes of voxels, the file holds " << seen;
        fail(path, out.str());
    }
}

// Cheap answers for integer data, which needs no value scan: a plain file's size, or the
// gzip trailer, which stores the uncompressed size modulo 2^32 (exact for the usual
// single-member file; a truncated file ends in arbitrary bytes and falls through to the scan).
bool sizeEvidentlySufficient(const fs::path& path, const Nifti1Layout& layout) {
    const std::uint64_t needed = layout.dataOffset + layout.voxels * layout.bytesPerVoxel;
    std::error_code error;
    const std::uint64_t fileSize = fs::file_size(path, error);
    if (error || fileSize < 4) return false;
    unsigned char magic[2] = {0, 0};
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(magic), 2);
    const bool gzipped = magic[0] == 0x1f && magic[1] == 0x8b;
    if (!gzipped) return fileSize >= needed;
    unsigned char tail[4];
    in.seekg(-4, std::ios::end);
    if (!in.read(reinterpret_cast<char*>(tail), 4)) return false;
    const std::uint32_t stored = std::uint32_t(tail[0]) | std::uint32_t(tail[1]) << 8 |
                                 std::uint32_t(tail[2]) << 16 | std::uint32_t(tail[3]) << 24;
    return stored == std::uint32_t(needed);
}

}  // namespace

void precheckNifti(const fs::path& path, unsigned long long maxVoxels) {
    GzFile file = open(path);
    char header[kNifti1HeaderSize];
    bool corrupt = false;
    const std::size_t got = readSome(file.get(), header, sizeof header, corrupt);
    if (got < sizeof header) {
        fail(path, corrupt ? "not a NIfTI file (compressed data is corrupt)" : "not a NIfTI file (shorter than a header)");
    }
    const std::int32_t size = field<std::int32_t>(header, 0, false);
    const std::int32_t swappedSize = field<std::int32_t>(header, 0, true);
    if (size != kNifti1HeaderSize && swappedSize != kNifti1HeaderSize) return;  // NIfTI-2 or not NIfTI: ITK decides
    if (std::memcmp(header + 344, "n+1", 4) != 0 && std::memcmp(header + 344, "ni1", 4) != 0) {
        fail(path, "not a NIfTI-1 file (bad magic)");
    }
    const Nifti1Layout layout = parseHeader(path, header);
    if (layout.voxels > maxVoxels) {
        std::ostringstream out;
        out << "header promises " << layout.voxels << " voxels, more than liverseg reads (" << maxVoxels
            << "); the file is corrupt or not a CT";
        fail(path, out.str());
    }
    if (std::memcmp(header + 344, "ni1", 4) == 0) return;  // .hdr/.img pair: ITK checks the .img
    const bool floatData = layout.datatype == kFloat32 || layout.datatype == kFloat64;
    if (!floatData && sizeEvidentlySufficient(path, layout)) return;
    scanData(path, file.get(), layout, sizeof header);
}

}  // namespace liverseg::core
