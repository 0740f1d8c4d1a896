#include "render/AxialLayout.h"

#include <Eigen/Geometry>

#include <algorithm>
#include <cmath>

namespace liverseg::render {

namespace {

// physicalAxisOf[indexAxis] for the assignment of index axes to patient axes that keeps
// the most of the direction cosines; unlike a per-column maximum it stays a permutation
// even for 45-degree obliques.
std::array<int, 3> nearestPatientAxes(const Eigen::Matrix3d& direction) {
    std::array<int, 3> permutation{0, 1, 2};
    std::array<int, 3> best = permutation;
    double bestScore = -1;
    do {
        double score = 0;
        for (int axis = 0; axis < 3; ++axis) score += std::abs(direction(permutation[axis], axis));
        if (score > bestScore + 1e-12) {
            bestScore = score;
            best = permutation;
        }
    } while (std::next_permutation(permutation.begin(), permutation.end()));
    return best;
}

int indexAxisAlong(const std::array<int, 3>& physicalAxisOf, int physicalAxis) {
    return int(std::find(physicalAxisOf.begin(), physicalAxisOf.end(), physicalAxis) - physicalAxisOf.begin());
}

}  // namespace

AxialLayout axialLayout(const core::Geometry& geometry) {
    const Eigen::Matrix3d& direction = geometry.direction;
    const auto physicalAxisOf = nearestPatientAxes(direction);

    AxialLayout layout;
    layout.sliceAxis = indexAxisAlong(physicalAxisOf, 2);
    layout.rightAxis = indexAxisAlong(physicalAxisOf, 0);
    layout.upAxis = indexAxisAlong(physicalAxisOf, 1);
    // LPS: +x is the patient's left (screen right), +y posterior (screen down).
    layout.rightReversed = direction(0, layout.rightAxis) < 0;
    layout.upReversed = direction(1, layout.upAxis) > 0;
    layout.oblique = core::isOblique(direction);
    layout.orientationCode = core::orientationCode(direction);

    const Eigen::Vector3d rightColumn = direction.col(layout.rightAxis).normalized();
    const Eigen::Vector3d upColumn = direction.col(layout.upAxis).normalized();
    layout.screenRight = layout.rightReversed ? Eigen::Vector3d(-rightColumn) : rightColumn;
    layout.screenUp = layout.upReversed ? Eigen::Vector3d(-upColumn) : upColumn;
    layout.viewDirection = layout.screenUp.cross(layout.screenRight).normalized();
    return layout;
}

VoxelProbe probeSlice(const core::CtVolume& volume, const AxialLayout& layout, int slice,
                      const Eigen::Vector3d& physicalPoint) {
    const core::Geometry& geometry = volume.geometry();
    VoxelProbe probe;
    Eigen::Vector3d sliceIndex(0, 0, 0);
    sliceIndex[layout.sliceAxis] = slice;
    const Eigen::Vector3d onPlane = geometry.indexToPhysical(sliceIndex);
    const Eigen::Vector3d& normal = layout.viewDirection;
    const Eigen::Vector3d projected = physicalPoint + normal * normal.dot(onPlane - physicalPoint);
    for (int axis = 0; axis < 3; ++axis) probe.physical[axis] = projected[axis];

    Eigen::Vector3d continuous = geometry.physicalToIndex(projected);
    continuous[layout.sliceAxis] = slice;
    probe.inside = true;
    for (int axis = 0; axis < 3; ++axis) {
        const long nearest = std::lround(continuous[axis]);
        probe.index[axis] = nearest;
        if (nearest < 0 || nearest >= long(geometry.size[axis])) probe.inside = false;
    }
    if (probe.inside) {
        probe.hu = volume.at(std::size_t(probe.index[0]), std::size_t(probe.index[1]), std::size_t(probe.index[2]));
    }
    return probe;
}

Eigen::Vector3d sliceCentre(const core::Geometry& geometry, const AxialLayout& layout, int slice) {
    Eigen::Vector3d centre;
    for (int axis = 0; axis < 3; ++axis) centre[axis] = (double(geometry.size[axis]) - 1) / 2;
    centre[layout.sliceAxis] = slice;
    return geometry.indexToPhysical(centre);
}

}  // namespace liverseg::render
