#pragma once
#include "core/Image.h"

#include <optional>

namespace liverseg::core {

// Overlap and surface metrics of a predicted mask against a reference on the same grid
// (any non-zero voxel is foreground). Distances are in millimetres using the real spacing.
//
// Empty masks, defined rather than NaN:
//   both empty:      dice = jaccard = 1, voe = rvd = 0, distances = 0
//   reference empty: dice = jaccard = 0, voe = 1, rvd absent (no volume to relate to),
//                    distances absent (no surface to measure to)
//   prediction empty: dice = jaccard = 0, voe = 1, rvd = -1, distances absent
struct SegmentationMetrics {
    double dice = 0;
    double jaccard = 0;
    double voe = 0;                    // volumetric overlap error = 1 - jaccard
    std::optional<double> rvd;         // relative volume difference (pred - ref) / ref
    std::optional<double> assd;        // average symmetric surface distance, mm
    std::optional<double> mssd;        // maximum symmetric surface distance (Hausdorff), mm
    std::optional<double> hd95;        // max of the two directed 95th percentiles, mm
    double predictedVolumeMl = 0;
    double referenceVolumeMl = 0;
    std::size_t intersection = 0;      // voxels in both
    std::size_t predictedVoxels = 0;
    std::size_t referenceVoxels = 0;
};

// Throws InputError when the grids differ.
SegmentationMetrics computeMetrics(const LabelMap& predicted, const LabelMap& reference);

// Foreground voxels with a 6-neighbour outside the foreground (voxels beyond the image
// border count as outside), marked 1.
LabelMap surfaceVoxels(const LabelMap& mask);

// Exact Euclidean distance, in mm, from every voxel to the nearest non-zero voxel of
// `targets` (separable lower-envelope transform with per-axis spacing). Infinite
// everywhere when `targets` is empty.
std::vector<float> distanceToNearest(const LabelMap& targets);

}  // namespace liverseg::core
