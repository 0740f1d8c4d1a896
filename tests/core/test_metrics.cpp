// Metric values computed by hand on small masks.
#include "core/Errors.h"
#include "core/Metrics.h"

#include <QtTest>

#include <cmath>

using namespace liverseg;

namespace {
core::LabelMap mask(std::size_t nx, std::size_t ny, std::size_t nz, Eigen::Vector3d spacing = Eigen::Vector3d::Ones()) {
    core::Geometry g;
    g.size = {nx, ny, nz};
    g.spacing = spacing;
    return core::LabelMap(g, 0);
}
void fillBox(core::LabelMap& m, std::size_t x0, std::size_t x1, std::size_t y0, std::size_t y1, std::size_t z0, std::size_t z1) {
    for (std::size_t z = z0; z < z1; ++z)
        for (std::size_t y = y0; y < y1; ++y)
            for (std::size_t x = x0; x < x1; ++x) m.at(x, y, z) = 1;
}
}  // namespace

class MetricsTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void overlapByHand() {
        // Reference: 4 voxels in a row; prediction: 3 of them plus 1 outside.
        core::LabelMap ref = mask(8, 1, 1, {2, 1, 1}), pred = mask(8, 1, 1, {2, 1, 1});
        fillBox(ref, 0, 4, 0, 1, 0, 1);
        fillBox(pred, 1, 5, 0, 1, 0, 1);
        const core::SegmentationMetrics m = core::computeMetrics(pred, ref);
        QCOMPARE(m.intersection, std::size_t(3));
        QCOMPARE(m.dice, 2.0 * 3 / 8);
        QCOMPARE(m.jaccard, 3.0 / 5);
        QCOMPARE(m.voe, 1 - 3.0 / 5);
        QCOMPARE(*m.rvd, 0.0);
        QCOMPARE(m.referenceVolumeMl, 4 * 2.0 / 1000);
        // Every voxel is surface in a 1-voxel-thick row. pred->ref: 0,0,0, and voxel 4 is
        // 1 voxel (2 mm) from voxel 3; ref->pred: voxel 0 is 2 mm from voxel 1.
        QCOMPARE(*m.mssd, 2.0);
        QCOMPARE(*m.assd, (2.0 + 2.0) / 8);
        // Directed distances {0,0,0,2}: 95th percentile = 0 + (2-0)*(0.85) = 1.7 (numpy linear).
        QVERIFY(std::abs(*m.hd95 - 1.7) < 1e-9);
    }

    void distancesUseAnisotropicSpacing() {
        // Two single voxels 3 slices apart at 2.5 mm: 7.5 mm, not 3 voxels.
        core::LabelMap ref = mask(3, 3, 5, {0.8, 0.8, 2.5}), pred = mask(3, 3, 5, {0.8, 0.8, 2.5});
        ref.at(1, 1, 0) = 1;
        pred.at(1, 1, 3) = 1;
        const core::SegmentationMetrics m = core::computeMetrics(pred, ref);
        QVERIFY(std::abs(*m.mssd - 7.5) < 1e-6);
        QVERIFY(std::abs(*m.assd - 7.5) < 1e-6);
        QCOMPARE(m.dice, 0.0);
    }

    void distanceTransformMatchesBruteForce() {
        core::LabelMap targets = mask(7, 6, 5, {0.7, 1.3, 2.0});
        targets.at(1, 2, 0) = targets.at(5, 5, 4) = targets.at(3, 0, 2) = 1;
        const std::vector<float> fast = core::distanceToNearest(targets);
        for (std::size_t z = 0; z < 5; ++z)
            for (std::size_t y = 0; y < 6; ++y)
                for (std::size_t x = 0; x < 7; ++x) {
                    double best = 1e9;
                    for (auto [tx, ty, tz] : {std::array<int, 3>{1, 2, 0}, {5, 5, 4}, {3, 0, 2}}) {
                        const double dx = (double(x) - tx) * 0.7, dy = (double(y) - ty) * 1.3, dz = (double(z) - tz) * 2.0;
                        best = std::min(best, std::sqrt(dx * dx + dy * dy + dz * dz));
                    }
                    QVERIFY(std::abs(fast[targets.offset(x, y, z)] - best) < 1e-4);
                }
    }

    void surfaceOfASolidCubeIsItsShell() {
        core::LabelMap cube = mask(5, 5, 5);
        fillBox(cube, 1, 4, 1, 4, 1, 4);  // 27 voxels, centre voxel is interior
        const core::LabelMap surface = core::surfaceVoxels(cube);
        QCOMPARE(core::countNonZero(surface), std::size_t(26));
        QCOMPARE(int(surface.at(2, 2, 2)), 0);
    }

    void shiftedCubeHasKnownSurfaceDistances() {
        core::LabelMap ref = mask(10, 10, 10), pred = mask(10, 10, 10);
        fillBox(ref, 2, 6, 2, 6, 2, 6);
        fillBox(pred, 3, 7, 2, 6, 2, 6);  // shifted by one voxel in x
        const core::SegmentationMetrics m = core::computeMetrics(pred, ref);
        QCOMPARE(m.dice, 2.0 * 48 / 128);
        QCOMPARE(*m.mssd, 1.0);
        QCOMPARE(*m.hd95, 1.0);
    }

    void emptyMasksHaveDefinedResults() {
        core::LabelMap empty = mask(4, 4, 4), some = mask(4, 4, 4);
        some.at(1, 1, 1) = 1;
        const core::SegmentationMetrics both = core::computeMetrics(empty, empty);
        QCOMPARE(both.dice, 1.0);
        QCOMPARE(both.voe, 0.0);
        QCOMPARE(*both.assd, 0.0);
        const core::SegmentationMetrics missed = core::computeMetrics(empty, some);
        QCOMPARE(missed.dice, 0.0);
        QCOMPARE(*missed.rvd, -1.0);
        QVERIFY(!missed.assd && !missed.hd95 && !missed.mssd);
        const core::SegmentationMetrics spurious = core::computeMetrics(some, empty);
        QCOMPARE(spurious.dice, 0.0);
        QVERIFY(!spurious.rvd && !spurious.assd);
    }

    void differentGridsAreRefused() {
        QVERIFY_THROWS_EXCEPTION(core::InputError, core::computeMetrics(mask(4, 4, 4), mask(4, 4, 5)));
    }
};

QTEST_GUILESS_MAIN(MetricsTest)
#include "test_metrics.moc"
