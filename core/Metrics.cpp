#include "core/Metrics.h"

#include "core/Errors.h"
#include "core/ImageIO.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace liverseg::core {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// One pass of the Felzenszwalb-Huttenlocher 1D transform along a line of `count` squared
// distances with stride `stride`, where neighbouring samples are `step` mm apart.
void transformLine(double* values, std::size_t count, std::size_t stride, double step, std::vector<double>& f,
                   std::vector<std::size_t>& hull, std::vector<double>& boundaries) {
    f.resize(count);
    hull.resize(count);
    boundaries.resize(count + 1);
    for (std::size_t i = 0; i < count; ++i) f[i] = values[i * stride];
    const double step2 = step * step;
    // Intersection of the parabolas rooted at p and q (in index units).
    const auto meet = [&](std::size_t p, std::size_t q) {
        return ((f[q] + step2 * double(q * q)) - (f[p] + step2 * double(p * p))) / (2 * step2 * (double(q) - double(p)));
    };
    std::size_t k = 0;
    std::size_t first = 0;
    while (first < count && std::isinf(f[first])) ++first;
    if (first == count) return;  // no finite sample: the line stays infinite
    hull[0] = first;
    boundaries[0] = -kInfinity;
    boundaries[1] = kInfinity;
    for (std::size_t q = first + 1; q < count; ++q) {
        if (std::isinf(f[q])) continue;
        double s = meet(hull[k], q);
        while (s <= boundaries[k]) {
            --k;
            s = meet(hull[k], q);
        }
        ++k;
        hull[k] = q;
        boundaries[k] = s;
        boundaries[k + 1] = kInfinity;
    }
    k = 0;
    for (std::size_t q = 0; q < count; ++q) {
        while (boundaries[k + 1] < double(q)) ++k;
        const double d = (double(q) - double(hull[k])) * step;
        values[q * stride] = d * d + f[hull[k]];
    }
}

double percentile(std::vector<double> values, double fraction) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    // Linear interpolation between closest ranks (numpy's default).
    const double position = fraction * double(values.size() - 1);
    const auto below = std::size_t(std::floor(position));
    const std::size_t above = std::min(below + 1, values.size() - 1);
    return values[below] + (values[above] - values[below]) * (position - double(below));
}

// Distances (mm) from each surface voxel of `from` to the nearest surface voxel of `to`.
std::vector<double> directedSurfaceDistances(const LabelMap& fromSurface, const std::vector<float>& toDistance) {
    std::vector<double> distances;
    for (std::size_t i = 0; i < fromSurface.voxelCount(); ++i) {
        if (fromSurface.voxels()[i]) distances.push_back(toDistance[i]);
    }
    return distances;
}

}  // namespace

LabelMap surfaceVoxels(const LabelMap& mask) {
    const auto [nx, ny, nz] = mask.size();
    const std::ptrdiff_t extent[3] = {std::ptrdiff_t(nx), std::ptrdiff_t(ny), std::ptrdiff_t(nz)};
    static const int kNeighbours[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
    LabelMap surface(mask.geometry(), 0);
    for (std::ptrdiff_t z = 0; z < extent[2]; ++z)
        for (std::ptrdiff_t y = 0; y < extent[1]; ++y)
            for (std::ptrdiff_t x = 0; x < extent[0]; ++x) {
                if (!mask.at(std::size_t(x), std::size_t(y), std::size_t(z))) continue;
                for (const auto& step : kNeighbours) {
                    const std::ptrdiff_t n[3] = {x + step[0], y + step[1], z + step[2]};
                    const bool beyondBorder = n[0] < 0 || n[1] < 0 || n[2] < 0 || n[0] >= extent[0] ||
                                              n[1] >= extent[1] || n[2] >= extent[2];
                    if (beyondBorder || !mask.at(std::size_t(n[0]), std::size_t(n[1]), std::size_t(n[2]))) {
                        surface.at(std::size_t(x), std::size_t(y), std::size_t(z)) = 1;
                        break;
                    }
                }
            }
    return surface;
}

std::vector<float> distanceToNearest(const LabelMap& targets) {
    const auto [nx, ny, nz] = targets.size();
    const Eigen::Vector3d& spacing = targets.geometry().spacing;
    std::vector<double> squared(targets.voxelCount());
    for (std::size_t i = 0; i < squared.size(); ++i) squared[i] = targets.voxels()[i] ? 0.0 : kInfinity;
    std::vector<double> f, boundaries;
    std::vector<std::size_t> hull;
    for (std::size_t z = 0; z < nz; ++z)
        for (std::size_t y = 0; y < ny; ++y) transformLine(&squared[(z * ny + y) * nx], nx, 1, spacing[0], f, hull, boundaries);
    for (std::size_t z = 0; z < nz; ++z)
        for (std::size_t x = 0; x < nx; ++x) transformLine(&squared[z * ny * nx + x], ny, nx, spacing[1], f, hull, boundaries);
    for (std::size_t y = 0; y < ny; ++y)
        for (std::size_t x = 0; x < nx; ++x) transformLine(&squared[y * nx + x], nz, nx * ny, spacing[2], f, hull, boundaries);
    std::vector<float> distance(squared.size());
    for (std::size_t i = 0; i < squared.size(); ++i) distance[i] = float(std::sqrt(squared[i]));
    return distance;
}

SegmentationMetrics computeMetrics(const LabelMap& predicted, const LabelMap& reference) {
    requireSameGrid(predicted.geometry(), reference.geometry(), "prediction");
    SegmentationMetrics m;
    for (std::size_t i = 0; i < predicted.voxelCount(); ++i) {
        const bool p = predicted.voxels()[i] != 0, r = reference.voxels()[i] != 0;
        m.predictedVoxels += p;
        m.referenceVoxels += r;
        m.intersection += p && r;
    }
    const Eigen::Vector3d& spacing = reference.geometry().spacing;
    const double voxelMl = spacing[0] * spacing[1] * spacing[2] / 1000.0;
    m.predictedVolumeMl = double(m.predictedVoxels) * voxelMl;
    m.referenceVolumeMl = double(m.referenceVoxels) * voxelMl;
    const std::size_t unionVoxels = m.predictedVoxels + m.referenceVoxels - m.intersection;
    if (unionVoxels == 0) {
        m.dice = m.jaccard = 1;
        m.voe = 0;
        m.rvd = m.assd = m.mssd = m.hd95 = 0.0;
        return m;
    }
    m.dice = 2.0 * double(m.intersection) / double(m.predictedVoxels + m.referenceVoxels);
    m.jaccard = double(m.intersection) / double(unionVoxels);
    m.voe = 1 - m.jaccard;
    if (m.referenceVoxels > 0) m.rvd = (double(m.predictedVoxels) - double(m.referenceVoxels)) / double(m.referenceVoxels);
    if (m.predictedVoxels == 0 || m.referenceVoxels == 0) return m;

    const LabelMap predictedSurface = surfaceVoxels(predicted);
    const LabelMap referenceSurface = surfaceVoxels(reference);
    const std::vector<double> toReference = directedSurfaceDistances(predictedSurface, distanceToNearest(referenceSurface));
    const std::vector<double> toPrediction = directedSurfaceDistances(referenceSurface, distanceToNearest(predictedSurface));
    double sum = 0, maximum = 0;
    for (double d : toReference) sum += d, maximum = std::max(maximum, d);
    for (double d : toPrediction) sum += d, maximum = std::max(maximum, d);
    m.assd = sum / double(toReference.size() + toPrediction.size());
    m.mssd = maximum;
    m.hd95 = std::max(percentile(toReference, 0.95), percentile(toPrediction, 0.95));
    return m;
}

}  // namespace liverseg::core
