#pragma once
#include "core/Image.h"

#include <Eigen/Core>

#include <array>
#include <cstddef>
#include <string>

namespace liverseg::render {

// How a voxel grid is laid out on screen for an axial view in radiological convention:
// looking from the patient's feet, the patient's right on screen left and anterior up.
// Derived from the direction matrix (ITK LPS). An oblique grid is shown along the axes
// nearest to the patient axes; nothing is resampled.
struct AxialLayout {
    int sliceAxis = 2;         // index axis across axial slices (nearest to superior-inferior)
    int rightAxis = 0;         // index axis along screen x
    bool rightReversed = false;  // true: increasing index runs to screen left
    int upAxis = 1;            // index axis along screen y
    bool upReversed = true;    // true: increasing index runs down the screen
    bool oblique = false;      // the grid is not aligned with the patient axes
    std::string orientationCode = "LPS";

    // Unit vectors in physical (LPS) space: screen right (towards the patient's left),
    // screen up (towards anterior), and the viewing direction into the screen (towards
    // superior for an axis-aligned grid). They follow the grid's own axes, so an oblique
    // grid is shown unrotated.
    Eigen::Vector3d screenRight{1, 0, 0};
    Eigen::Vector3d screenUp{0, -1, 0};
    Eigen::Vector3d viewDirection{0, 0, 1};
};

AxialLayout axialLayout(const core::Geometry& geometry);

// What lies under a point of a displayed slice.
struct VoxelProbe {
    bool inside = false;                 // the point falls on a voxel of the slice
    std::array<long, 3> index{0, 0, 0};  // voxel index (i, j, k)
    std::array<double, 3> physical{0, 0, 0};  // the point in millimetres, LPS
    int hu = 0;
};

// The voxel of slice `slice` under `physicalPoint`; the point is first projected onto the
// slice plane along the viewing direction.
VoxelProbe probeSlice(const core::CtVolume& volume, const AxialLayout& layout, int slice,
                      const Eigen::Vector3d& physicalPoint);

// The physical centre of a slice (the middle of its in-plane extent).
Eigen::Vector3d sliceCentre(const core::Geometry& geometry, const AxialLayout& layout, int slice);

}  // namespace liverseg::render
