#pragma once
#include <cstddef>
#include <vector>

namespace liverseg::core {

// A 2D float image, x fastest.
struct Plane {
    std::size_t width = 0;
    std::size_t height = 0;
    std::vector<float> pixels;
};

// Resamples a plane to a new pixel count covering the same field of view, separably per
// axis: shrinking averages the source pixels each output pixel covers, weighted by overlap
// (area sampling: no aliasing; an integer factor averages whole blocks); enlarging
// interpolates linearly between pixel centres (PyTorch's align_corners=false). Used to bring
// CT slices to a model's pixel spacing and probabilities back to the CT grid.
Plane resamplePlane(const Plane& source, std::size_t width, std::size_t height);

// Pixel count that covers `extent` pixels of `spacing` mm at `targetSpacing` mm.
std::size_t resampledLength(std::size_t extent, double spacing, double targetSpacing);

}  // namespace liverseg::core
