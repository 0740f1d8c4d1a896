#include "core/Image.h"

#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace liverseg::core {

Eigen::Vector3d Geometry::indexToPhysical(const Eigen::Vector3d& index) const {
    return origin + direction * spacing.asDiagonal() * index;
}

Eigen::Vector3d Geometry::physicalToIndex(const Eigen::Vector3d& point) const {
    const Eigen::Matrix3d indexToPhysicalMatrix = direction * spacing.asDiagonal();
    return indexToPhysicalMatrix.inverse() * (point - origin);
}

namespace {
std::string formatVector(const Eigen::Vector3d& v) {
    std::ostringstream out;
    out.precision(6);
    out << v[0] << " x " << v[1] << " x " << v[2];
    return out.str();
}
}  // namespace

std::string Geometry::differenceFrom(const Geometry& other, double tolerance) const {
    std::ostringstream out;
    if (size != other.size) {
        out << "size " << size[0] << "x" << size[1] << "x" << size[2] << " vs " << other.size[0]
            << "x" << other.size[1] << "x" << other.size[2];
    } else if (!spacing.isApprox(other.spacing, tolerance) &&
               (spacing - other.spacing).cwiseAbs().maxCoeff() > tolerance) {
        out << "spacing " << formatVector(spacing) << " vs " << formatVector(other.spacing);
    } else if ((origin - other.origin).cwiseAbs().maxCoeff() > tolerance) {
        out << "origin " << formatVector(origin) << " vs " << formatVector(other.origin);
    } else if ((direction - other.direction).cwiseAbs().maxCoeff() > tolerance) {
        out << "direction matrices differ by "
            << (direction - other.direction).cwiseAbs().maxCoeff();
    }
    return out.str();
}

std::string describe(const Geometry& geometry) {
    std::ostringstream out;
    out << geometry.size[0] << "x" << geometry.size[1] << "x" << geometry.size[2] << " voxels, spacing "
        << formatVector(geometry.spacing) << " mm, origin " << formatVector(geometry.origin);
    return out.str();
}

template <typename Voxel>
Image3D<Voxel>::Image3D(Geometry geometry, std::vector<Voxel> voxels)
    : geometry_(std::move(geometry)), voxels_(std::move(voxels)) {
    if (voxels_.size() != geometry_.voxelCount()) {
        throw std::invalid_argument("Image3D: voxel count does not match the geometry");
    }
}

ValueRange valueRange(const CtVolume& volume) {
    if (volume.empty()) return {};
    const auto [low, high] = std::minmax_element(volume.voxels().begin(), volume.voxels().end());
    return {double(*low), double(*high)};
}

std::size_t countNonZero(const LabelMap& labels) {
    return std::size_t(std::count_if(labels.voxels().begin(), labels.voxels().end(),
                                     [](std::uint8_t v) { return v != 0; }));
}

template class Image3D<std::int16_t>;
template class Image3D<std::uint8_t>;
template class Image3D<float>;

}  // namespace liverseg::core

namespace liverseg::core {

std::string orientationCode(const Eigen::Matrix3d& direction) {
    static const char positive[3] = {'L', 'P', 'S'};
    static const char negative[3] = {'R', 'A', 'I'};
    std::string code;
    for (int axis = 0; axis < 3; ++axis) {
        Eigen::Index dominant = 0;
        direction.col(axis).cwiseAbs().maxCoeff(&dominant);
        code += direction(dominant, axis) >= 0 ? positive[dominant] : negative[dominant];
    }
    return code;
}

bool isOblique(const Eigen::Matrix3d& direction, double tolerance) {
    for (int axis = 0; axis < 3; ++axis) {
        if (1.0 - direction.col(axis).cwiseAbs().maxCoeff() > tolerance) return true;
    }
    return false;
}

std::optional<AxialView> axialView(const Eigen::Matrix3d& direction) {
    Eigen::Index columnsAxis = 0, rowsAxis = 0, slicesAxis = 0;
    direction.col(0).cwiseAbs().maxCoeff(&columnsAxis);
    direction.col(1).cwiseAbs().maxCoeff(&rowsAxis);
    direction.col(2).cwiseAbs().maxCoeff(&slicesAxis);
    if (columnsAxis != 0 || rowsAxis != 1 || slicesAxis != 2) return std::nullopt;
    // LPS: +x points to the patient's left, +y posterior, +z superior.
    return AxialView{direction(0, 0) < 0, direction(1, 1) < 0, direction(2, 2) < 0};
}

}  // namespace liverseg::core
