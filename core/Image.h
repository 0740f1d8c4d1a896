#pragma once
#include <Eigen/Core>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace liverseg::core {

// Where voxels sit in physical space, in ITK's convention (LPS, millimetres): the physical
// position of index (i, j, k) is origin + direction * diag(spacing) * (i, j, k).
struct Geometry {
    std::array<std::size_t, 3> size{0, 0, 0};
    Eigen::Vector3d spacing = Eigen::Vector3d::Ones();
    Eigen::Vector3d origin = Eigen::Vector3d::Zero();
    Eigen::Matrix3d direction = Eigen::Matrix3d::Identity();  // columns: index axes

    std::size_t voxelCount() const { return size[0] * size[1] * size[2]; }
    Eigen::Vector3d indexToPhysical(const Eigen::Vector3d& index) const;
    Eigen::Vector3d physicalToIndex(const Eigen::Vector3d& point) const;

    // Empty when both describe the same voxel grid within `tolerance` (millimetres for
    // origin and spacing, absolute for direction cosines); otherwise what differs.
    std::string differenceFrom(const Geometry& other, double tolerance = 1e-4) const;
    bool sameGridAs(const Geometry& other, double tolerance = 1e-4) const {
        return differenceFrom(other, tolerance).empty();
    }
};

std::string describe(const Geometry& geometry);

// A 3D scalar image with its geometry. Voxels are stored x fastest, then y, then z.
template <typename Voxel>
class Image3D {
public:
    using value_type = Voxel;

    Image3D() = default;
    explicit Image3D(Geometry geometry, Voxel fill = Voxel{})
        : geometry_(std::move(geometry)), voxels_(geometry_.voxelCount(), fill) {}
    Image3D(Geometry geometry, std::vector<Voxel> voxels);

    const Geometry& geometry() const { return geometry_; }
    const std::array<std::size_t, 3>& size() const { return geometry_.size; }
    std::size_t voxelCount() const { return voxels_.size(); }
    bool empty() const { return voxels_.empty(); }

    std::size_t offset(std::size_t x, std::size_t y, std::size_t z) const {
        return x + geometry_.size[0] * (y + geometry_.size[1] * z);
    }
    Voxel& at(std::size_t x, std::size_t y, std::size_t z) { return voxels_[offset(x, y, z)]; }
    Voxel at(std::size_t x, std::size_t y, std::size_t z) const { return voxels_[offset(x, y, z)]; }

    std::size_t sliceVoxelCount() const { return geometry_.size[0] * geometry_.size[1]; }
    Voxel* slice(std::size_t z) { return voxels_.data() + z * sliceVoxelCount(); }
    const Voxel* slice(std::size_t z) const { return voxels_.data() + z * sliceVoxelCount(); }

    std::vector<Voxel>& voxels() { return voxels_; }
    const std::vector<Voxel>& voxels() const { return voxels_; }

private:
    Geometry geometry_;
    std::vector<Voxel> voxels_;
};

using CtVolume = Image3D<std::int16_t>;  // Hounsfield units
using LabelMap = Image3D<std::uint8_t>;  // 0 = background

struct ValueRange {
    double min = 0;
    double max = 0;
};
ValueRange valueRange(const CtVolume& volume);
std::size_t countNonZero(const LabelMap& labels);

extern template class Image3D<std::int16_t>;
extern template class Image3D<std::uint8_t>;
extern template class Image3D<float>;

}  // namespace liverseg::core

namespace liverseg::core {
// The anatomical direction each index axis points toward, e.g. "LPS" for an identity
// direction matrix (ITK's patient coordinates: +x left, +y posterior, +z superior).
// Oblique axes take the letter of their largest component.
std::string orientationCode(const Eigen::Matrix3d& direction);
bool isOblique(const Eigen::Matrix3d& direction, double tolerance = 1e-3);

// How to read a volume's axial slices in radiological view, as the networks see them:
// columns from the patient's right to left, rows from anterior to posterior, slices from
// inferior to superior. nullopt when the index axes are not (near) x, y, z: the slices are
// not axial.
struct AxialView {
    bool flipColumns = false;
    bool flipRows = false;
    bool flipSlices = false;
};
std::optional<AxialView> axialView(const Eigen::Matrix3d& direction);
}  // namespace liverseg::core
