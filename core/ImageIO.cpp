#include "core/ImageIO.h"

#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "core/ItkImageFiles.h"

#include <Eigen/LU>

#include <cmath>

namespace liverseg::core {
namespace {

Geometry fromPlain(const itkfiles::PlainGeometry& plain) {
    Geometry geometry;
    geometry.size = plain.size;
    for (int d = 0; d < 3; ++d) {
        geometry.spacing[d] = plain.spacing[d];
        geometry.origin[d] = plain.origin[d];
        for (int c = 0; c < 3; ++c) geometry.direction(d, c) = plain.direction[d * 3 + c];
    }
    return geometry;
}

itkfiles::PlainGeometry toPlain(const Geometry& geometry) {
    itkfiles::PlainGeometry plain;
    plain.size = geometry.size;
    for (int d = 0; d < 3; ++d) {
        plain.spacing[d] = geometry.spacing[d];
        plain.origin[d] = geometry.origin[d];
        for (int c = 0; c < 3; ++c) plain.direction[d * 3 + c] = geometry.direction(d, c);
    }
    return plain;
}

template <typename Voxel>
Image3D<Voxel> fromPlain(const std::filesystem::path& path, itkfiles::PlainImage<Voxel>&& plain) {
    Geometry geometry = fromPlain(plain.geometry);
    if (!geometry.direction.allFinite() || std::abs(geometry.direction.determinant()) < 1e-6) {
        throw InputError(path.string() + ": has a degenerate orientation (direction matrix is singular or not finite)");
    }
    return Image3D<Voxel>(std::move(geometry), std::move(plain.voxels));
}

}  // namespace

bool isSupportedImageExtension(const std::filesystem::path& path) {
    const std::string ext = fullExtension(path);
    return ext == ".nii" || ext == ".nii.gz" || ext == ".nrrd" || ext == ".nhdr" || ext == ".mha" ||
           ext == ".mhd" || ext == ".dcm";
}

LoadedCt readCt(const std::filesystem::path& path, const CtReadOptions& options) {
    itkfiles::PlainCt plain = itkfiles::readCt(path, options.seriesUid);
    return LoadedCt{fromPlain(path, std::move(plain.image)), std::move(plain.source)};
}

LabelMap readLabelMap(const std::filesystem::path& path) { return fromPlain(path, itkfiles::readLabels(path)); }

void requireSameGrid(const Geometry& labelGeometry, const Geometry& ctGeometry, const std::string& labelName) {
    const std::string difference = labelGeometry.differenceFrom(ctGeometry, 1e-3);
    if (!difference.empty()) {
        throw InputError(labelName + ": label map does not lie on the CT's voxel grid (" + difference + ")");
    }
}

LabelMap readLabelMapOnGrid(const std::filesystem::path& path, const Geometry& ctGeometry) {
    LabelMap labels = readLabelMap(path);
    requireSameGrid(labels.geometry(), ctGeometry, path.string());
    return labels;
}

std::vector<DicomSeries> listDicomSeries(const std::filesystem::path& folder) {
    return itkfiles::listDicomSeries(folder);
}

void writeLabelMap(const LabelMap& labels, const std::filesystem::path& path) {
    itkfiles::writeImage(toPlain(labels.geometry()), labels.voxels().data(), path);
}

void writeCtVolume(const CtVolume& volume, const std::filesystem::path& path) {
    itkfiles::writeImage(toPlain(volume.geometry()), volume.voxels().data(), path);
}

}  // namespace liverseg::core
