#pragma once
// The only place in core that includes ITK. ITK 5.2 bundles its own Eigen 3.3, which
// cannot share a translation unit with the system Eigen 3.4 that core's public types use,
// so this boundary speaks plain arrays and ImageIO.cpp converts to core::Image3D.
#include "core/ImageSource.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace liverseg::core::itkfiles {

struct PlainGeometry {
    std::array<std::size_t, 3> size{0, 0, 0};
    std::array<double, 3> spacing{1, 1, 1};
    std::array<double, 3> origin{0, 0, 0};
    std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major
};

template <typename Voxel>
struct PlainImage {
    PlainGeometry geometry;
    std::vector<Voxel> voxels;
};

struct PlainCt {
    PlainImage<std::int16_t> image;
    CtSource source;
};

PlainCt readCt(const std::filesystem::path& path, const std::string& seriesUid);
PlainImage<std::uint8_t> readLabels(const std::filesystem::path& path);
std::vector<DicomSeries> listDicomSeries(const std::filesystem::path& folder);

// Writes through core::writeAtomically; the format follows the extension.
void writeImage(const PlainGeometry& geometry, const std::int16_t* voxels, const std::filesystem::path& path);
void writeImage(const PlainGeometry& geometry, const std::uint8_t* voxels, const std::filesystem::path& path);

}  // namespace liverseg::core::itkfiles
