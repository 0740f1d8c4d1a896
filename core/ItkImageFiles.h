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

// 8-bit 2D pictures (JPEG/PNG slices of 2D datasets, training plots). Row-major, x fastest,
// `components` values per pixel (1 grey, 3 RGB) interleaved.
struct PlainPicture {
    std::size_t width = 0;
    std::size_t height = 0;
    int components = 1;
    std::vector<std::uint8_t> pixels;
};
// Reads a .jpg/.jpeg/.png with 8-bit samples as grey (colour converted by luminance, so an
// image stored as three identical channels keeps its grey values).
PlainPicture readGreyPicture(const std::filesystem::path& path);
// Writes an 8-bit grey or RGB PNG atomically.
void writePng(const PlainPicture& picture, const std::filesystem::path& path);

}  // namespace liverseg::core::itkfiles
