#include "core/LabelOps.h"
#include "core/SliceResampler.h"

#include <QtTest>

using namespace liverseg;

namespace {
core::LabelMap emptyMask(std::size_t nx, std::size_t ny, std::size_t nz) {
    core::Geometry g;
    g.size = {nx, ny, nz};
    return core::LabelMap(g, 0);
}
}  // namespace

class LabelOpsTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void largestComponentKeepsOnlyTheBiggestBlob() {
        core::LabelMap mask = emptyMask(10, 10, 4);
        for (std::size_t z = 0; z < 3; ++z)
            for (std::size_t y = 1; y < 4; ++y)
                for (std::size_t x = 1; x < 4; ++x) mask.at(x, y, z) = 1;  // 27 voxels
        mask.at(8, 8, 3) = 1;                                              // isolated voxel
        mask.at(4, 4, 2) = 1;  // touches the big blob only by a corner: a separate 6-component
        QCOMPARE(core::keepLargestComponent(mask), std::size_t(2));
        QCOMPARE(core::countNonZero(mask), std::size_t(27));
        QCOMPARE(int(mask.at(8, 8, 3)), 0);
        QCOMPARE(core::keepLargestComponent(mask), std::size_t(0));
    }

    void holesEnclosedInASliceAreFilledButOpenConcavitiesAreNot() {
        core::LabelMap mask = emptyMask(9, 9, 2);
        for (std::size_t y = 1; y < 8; ++y)
            for (std::size_t x = 1; x < 8; ++x) mask.at(x, y, 0) = mask.at(x, y, 1) = 1;
        mask.at(4, 4, 0) = 0;  // enclosed hole: filled
        mask.at(3, 4, 0) = 0;
        for (std::size_t y = 1; y < 5; ++y) mask.at(4, y, 1) = 0;  // a notch open to the border: kept
        QCOMPARE(core::fillHolesPerSlice(mask), std::size_t(2));
        QCOMPARE(int(mask.at(4, 4, 0)), 1);
        QCOMPARE(int(mask.at(4, 2, 1)), 0);
    }

    void diceByHand() {
        core::LabelMap a = emptyMask(4, 1, 1), b = emptyMask(4, 1, 1);
        QCOMPARE(core::diceCoefficient(a, b), 1.0);  // both empty: defined as 1
        a.at(0, 0, 0) = a.at(1, 0, 0) = a.at(2, 0, 0) = 1;
        QCOMPARE(core::diceCoefficient(a, b), 0.0);
        b.at(2, 0, 0) = b.at(3, 0, 0) = 5;  // any non-zero label is foreground
        QCOMPARE(core::diceCoefficient(a, b), 2.0 * 1 / (3 + 2));
    }

    void shrinkingByTwoAveragesBlocks() {
        core::Plane plane{4, 2, {1, 3, 5, 7, 2, 4, 6, 8}};
        const core::Plane half = core::resamplePlane(plane, 2, 1);
        QCOMPARE(half.pixels.size(), std::size_t(2));
        QCOMPARE(half.pixels[0], 2.5f);  // mean of 1,3,2,4
        QCOMPARE(half.pixels[1], 6.5f);
    }

    void enlargingInterpolatesBetweenCentresLikePyTorch() {
        // torch.nn.functional.interpolate([0, 4], size=4, mode='linear', align_corners=False)
        // gives [0, 1, 3, 4].
        core::Plane plane{2, 1, {0, 4}};
        const core::Plane doubled = core::resamplePlane(plane, 4, 1);
        QCOMPARE(doubled.pixels, (std::vector<float>{0, 1, 3, 4}));
    }

    void nonIntegerShrinkPreservesTheMean() {
        core::Plane plane{7, 5, {}};
        for (std::size_t i = 0; i < 35; ++i) plane.pixels.push_back(float(i % 7) * 3.0f + float(i / 7));
        const core::Plane small = core::resamplePlane(plane, 3, 2);
        double sourceMean = 0, targetMean = 0;
        for (float v : plane.pixels) sourceMean += v / 35.0;
        for (float v : small.pixels) targetMean += v / 6.0;
        QVERIFY(std::abs(sourceMean - targetMean) < 1e-4);
        QCOMPARE(core::resampledLength(512, 0.8, 1.6), std::size_t(256));
        QCOMPARE(core::resampledLength(101, 3.0, 1.6), std::size_t(189));
    }
};

QTEST_GUILESS_MAIN(LabelOpsTest)
#include "test_labelops.moc"
