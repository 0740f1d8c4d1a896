#pragma once
// 8-bit 2D pictures: the slices and masks of 2D datasets (JPEG/PNG) and the PNG plots a
// training run writes. ITK does the file formats, behind core/ItkImageFiles.cpp.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace liverseg::core {

struct Picture {
    std::size_t width = 0;
    std::size_t height = 0;
    int components = 1;                // 1 grey, 3 RGB (interleaved)
    std::vector<std::uint8_t> pixels;  // row-major, x fastest
};

// Reads a .png/.jpg/.jpeg with 8-bit samples as grey (components = 1); colour pictures are
// converted by luminance, so grey stored as three identical channels keeps its values.
// Throws InputError for anything else (16-bit, 3D, corrupt, unknown type).
Picture readGreyPicture(const std::filesystem::path& path);

// Writes an 8-bit grey or RGB PNG atomically.
void writePng(const Picture& picture, const std::filesystem::path& path);

}  // namespace liverseg::core
