#include "core/Image.h"
#include "core/ImageIO.h"
#include "core/Phantom.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace liverseg;

namespace {

// 384 x 384 x 240 mm, like the default, at a coarse grid so each case takes a fraction of a second.
core::PhantomOptions coarseOptions(std::uint64_t seed) {
    core::PhantomOptions options;
    options.seed = seed;
    options.size = {128, 128, 48};
    options.spacing = Eigen::Vector3d(3.0, 3.0, 5.0);
    return options;
}

double voxelMillilitres(const core::Geometry& geometry) {
    return geometry.spacing.prod() / 1000.0;
}

std::size_t liverConnectedComponents(const core::LabelMap& liver) {
    const auto [nx, ny, nz] = liver.size();
    std::vector<std::uint8_t> seen(liver.voxelCount(), 0);
    std::size_t components = 0;
    std::vector<std::size_t> stack;
    for (std::size_t start = 0; start < seen.size(); ++start) {
        if (!liver.voxels()[start] || seen[start]) continue;
        ++components;
        stack.assign(1, start);
        seen[start] = 1;
        while (!stack.empty()) {
            const std::size_t v = stack.back();
            stack.pop_back();
            const std::size_t x = v % nx, y = (v / nx) % ny, z = v / (nx * ny);
            const std::size_t neighbours[6] = {x > 0 ? v - 1 : v, x + 1 < nx ? v + 1 : v,
                                               y > 0 ? v - nx : v, y + 1 < ny ? v + nx : v,
                                               z > 0 ? v - nx * ny : v, z + 1 < nz ? v + nx * ny : v};
            for (std::size_t n : neighbours) {
                if (liver.voxels()[n] && !seen[n]) {
                    seen[n] = 1;
                    stack.push_back(n);
                }
            }
        }
    }
    return components;
}

// Per slice: air (< -500 HU) reachable from the slice border is outside the body.
std::vector<std::uint8_t> outsideBody(const core::CtVolume& ct) {
    const auto [nx, ny, nz] = ct.size();
    std::vector<std::uint8_t> outside(ct.voxelCount(), 0);
    std::vector<std::size_t> stack;
    for (std::size_t z = 0; z < nz; ++z) {
        const std::size_t base = z * nx * ny;
        auto push = [&](std::size_t x, std::size_t y) {
            const std::size_t v = base + x + nx * y;
            if (!outside[v] && ct.voxels()[v] < -500) {
                outside[v] = 1;
                stack.push_back(v);
            }
        };
        for (std::size_t x = 0; x < nx; ++x) push(x, 0), push(x, ny - 1);
        for (std::size_t y = 0; y < ny; ++y) push(0, y), push(nx - 1, y);
        while (!stack.empty()) {
            const std::size_t v = stack.back() - base;
            stack.pop_back();
            const std::size_t x = v % nx, y = v / nx;
            if (x > 0) push(x - 1, y);
            if (x + 1 < nx) push(x + 1, y);
            if (y > 0) push(x, y - 1);
            if (y + 1 < ny) push(x, y + 1);
        }
    }
    return outside;
}

std::vector<double> liverValues(const core::PhantomCase& phantom) {
    std::vector<double> values;
    for (std::size_t v = 0; v < phantom.liver.voxelCount(); ++v) {
        if (phantom.liver.voxels()[v]) values.push_back(phantom.ct.voxels()[v]);
    }
    return values;
}

double median(std::vector<double> values) {
    std::nth_element(values.begin(), values.begin() + std::ptrdiff_t(values.size() / 2), values.end());
    return values[values.size() / 2];
}

std::size_t liverSliceWithMostVoxels(const core::LabelMap& liver) {
    std::size_t best = 0, bestCount = 0;
    for (std::size_t z = 0; z < liver.size()[2]; ++z) {
        const auto* slice = liver.slice(z);
        const auto count = std::size_t(std::count(slice, slice + liver.sliceVoxelCount(), std::uint8_t(1)));
        if (count > bestCount) best = z, bestCount = count;
    }
    return best;
}

}  // namespace

class PhantomTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void geometryIsCentredLpsOnTheRequestedGrid() {
        const core::PhantomCase phantom = core::makeAbdominalPhantom(coarseOptions(1));
        const core::Geometry& g = phantom.ct.geometry();
        QCOMPARE(g.size, (std::array<std::size_t, 3>{128, 128, 48}));
        QVERIFY(g.spacing.isApprox(Eigen::Vector3d(3, 3, 5)));
        QVERIFY(g.direction.isIdentity());
        QVERIFY(g.indexToPhysical(Eigen::Vector3d(63.5, 63.5, 23.5)).norm() < 1e-9);  // centred
        QVERIFY2(phantom.liver.geometry().sameGridAs(g), "liver mask must lie on the CT grid");
    }

    void sameSeedGivesIdenticalVoxels() {
        const core::PhantomCase first = core::makeAbdominalPhantom(coarseOptions(7));
        const core::PhantomCase second = core::makeAbdominalPhantom(coarseOptions(7));
        QVERIFY(first.ct.voxels() == second.ct.voxels());
        QVERIFY(first.liver.voxels() == second.liver.voxels());
    }

    void differentSeedsGiveDifferentLivers() {
        const core::LabelMap first = core::makeAbdominalPhantom(coarseOptions(1)).liver;
        const core::LabelMap second = core::makeAbdominalPhantom(coarseOptions(2)).liver;
        std::size_t differing = 0;
        for (std::size_t v = 0; v < first.voxelCount(); ++v) differing += first.voxels()[v] != second.voxels()[v];
        // A different shape, not a few boundary voxels.
        QVERIFY2(double(differing) > 0.05 * double(core::countNonZero(first)), qPrintable(QString::number(differing)));
    }

    void airOutsideFatUnderTheSkinLiverSoftTissue() {
        const core::PhantomCase phantom = core::makeAbdominalPhantom(coarseOptions(3));
        const auto [nx, ny, nz] = phantom.ct.size();
        // The anterior edge of every slice is air, exactly -1000.
        for (std::size_t z = 0; z < nz; ++z) {
            for (std::size_t x = 0; x < nx; ++x) QCOMPARE(phantom.ct.at(x, 0, z), std::int16_t(-1000));
        }
        // Subcutaneous fat: just under the skin at the anterior midline of the liver's widest slice.
        const std::size_t z = liverSliceWithMostVoxels(phantom.liver);
        double fatSum = 0;
        int fatCount = 0;
        for (std::size_t x = nx / 2 - 6; x <= nx / 2 + 6; ++x) {
            std::size_t y = 0;
            while (y < ny && phantom.ct.at(x, y, z) < -500) ++y;
            QVERIFY(y + 3 < ny);
            fatSum += phantom.ct.at(x, y + 2, z) + phantom.ct.at(x, y + 3, z);
            fatCount += 2;
        }
        const double fat = fatSum / fatCount;
        QVERIFY2(fat > -130 && fat < -70, qPrintable(QString("subcutaneous fat %1 HU").arg(fat)));

        const std::vector<double> liver = liverValues(phantom);
        double mean = 0;
        for (double v : liver) mean += v;
        mean /= double(liver.size());
        QVERIFY2(mean > 40 && mean < 80, qPrintable(QString("liver mean %1 HU").arg(mean)));
        const double parenchyma = median(liver);
        QVERIFY2(parenchyma > 50 && parenchyma < 72, qPrintable(QString("liver median %1 HU").arg(parenchyma)));
        std::vector<double> deviations;
        for (double v : liver) deviations.push_back(std::abs(v - parenchyma));
        const double noise = 1.4826 * median(deviations);
        QVERIFY2(noise > 8 && noise < 18, qPrintable(QString("liver noise %1 HU").arg(noise)));
    }

    void boneIsBrightAndPosteriorMidline() {
        const core::PhantomCase phantom = core::makeAbdominalPhantom(coarseOptions(4));
        const auto [nx, ny, nz] = phantom.ct.size();
        double sumX = 0, sumY = 0, count = 0;
        // Ribs are bright too; look at the middle third, where only the spine is.
        for (std::size_t z = 0; z < nz; ++z) {
            for (std::size_t y = 0; y < ny; ++y) {
                for (std::size_t x = nx / 3; x < 2 * nx / 3; ++x) {
                    if (phantom.ct.at(x, y, z) < 400) continue;
                    sumX += double(x), sumY += double(y), count += 1;
                }
            }
        }
        QVERIFY2(count > 100, "no bone");
        QVERIFY(std::abs(sumX / count - double(nx - 1) / 2) < 0.06 * double(nx));  // midline
        QVERIFY2(sumY / count > 0.55 * double(ny), qPrintable(QString::number(sumY / count)));  // posterior
    }

    void liverIsInsideTheBodyOnThePatientsRight() {
        const core::PhantomCase phantom = core::makeAbdominalPhantom(coarseOptions(5));
        const auto [nx, ny, nz] = phantom.ct.size();
        const std::vector<std::uint8_t> outside = outsideBody(phantom.ct);
        double sumX = 0;
        std::size_t count = 0, lowHu = 0;
        for (std::size_t z = 0; z < nz; ++z) {
            for (std::size_t y = 0; y < ny; ++y) {
                for (std::size_t x = 0; x < nx; ++x) {
                    if (!phantom.liver.at(x, y, z)) continue;
                    sumX += double(x);
                    ++count;
                    // At least two voxels of body (skin, fat, muscle) around every liver voxel.
                    QVERIFY(x >= 2 && y >= 2 && x + 2 < nx && y + 2 < ny);
                    for (std::size_t dy = y - 2; dy <= y + 2; ++dy) {
                        for (std::size_t dx = x - 2; dx <= x + 2; ++dx) QVERIFY(!outside[phantom.ct.offset(dx, dy, z)]);
                    }
                    // Only partial volume with lung or bowel gas next to the liver goes below -200 HU.
                    lowHu += phantom.ct.at(x, y, z) <= -200;
                }
            }
        }
        QVERIFY(count > 1000);
        QVERIFY2(lowHu < count / 100, qPrintable(QString("%1 of %2 liver voxels below -200 HU").arg(lowHu).arg(count)));
        // +x is the patient's left in LPS: the liver's centre lies at low x.
        QVERIFY2(sumX / double(count) < 0.4 * double(nx), qPrintable(QString::number(sumX / double(count))));
    }

    void liverIsOneConnectedAdultSizedPieceForManySeeds() {
        for (std::uint64_t seed : {1, 2, 3, 11, 12, 99, 1234, 2147483647}) {
            core::PhantomOptions options = coarseOptions(seed);
            options.size = {96, 96, 40};
            options.spacing = Eigen::Vector3d(4, 4, 6);  // 384 x 384 x 240 mm
            const core::PhantomCase phantom = core::makeAbdominalPhantom(options);
            QCOMPARE(liverConnectedComponents(phantom.liver), std::size_t(1));
            // The anatomy is drawn for a 400 mm field of view, here scaled by 384 / 400.
            const double scale = 384.0 / 400.0;
            const double litres = double(core::countNonZero(phantom.liver)) * voxelMillilitres(phantom.ct.geometry()) /
                                  1000.0 / (scale * scale * scale);
            QVERIFY2(litres > 1.0 && litres < 2.4, qPrintable(QString("seed %1: %2 L").arg(seed).arg(litres)));
        }
    }

    void liverSpansOnlyPartOfTheSlicesAtTheDefaultSize() {
        const core::PhantomCase phantom = core::makeAbdominalPhantom(core::PhantomOptions{});
        const std::size_t nz = phantom.liver.size()[2];
        std::vector<bool> hasLiver(nz);
        for (std::size_t z = 0; z < nz; ++z) {
            const auto* slice = phantom.liver.slice(z);
            hasLiver[z] = std::any_of(slice, slice + phantom.liver.sliceVoxelCount(), [](std::uint8_t v) { return v != 0; });
        }
        QVERIFY(!hasLiver.front());
        QVERIFY(!hasLiver.back());
        QVERIFY(std::count(hasLiver.begin(), hasLiver.end(), true) > std::ptrdiff_t(nz / 3));
        // Largest in its upper part: the widest slice lies above the middle of the liver's range.
        const auto first = std::size_t(std::find(hasLiver.begin(), hasLiver.end(), true) - hasLiver.begin());
        const auto last = nz - 1 - std::size_t(std::find(hasLiver.rbegin(), hasLiver.rend(), true) - hasLiver.rbegin());
        QVERIFY(liverSliceWithMostVoxels(phantom.liver) > (first + last) / 2);
    }

    void anisotropicSpacingKeepsTheLiverVolume() {
        core::PhantomOptions isotropic;
        isotropic.seed = 21;
        isotropic.size = {120, 120, 120};
        isotropic.spacing = Eigen::Vector3d(2, 2, 2);  // 240 mm cube
        core::PhantomOptions anisotropic = isotropic;
        anisotropic.size = {300, 300, 96};
        anisotropic.spacing = Eigen::Vector3d(0.8, 0.8, 2.5);  // the same cube
        const core::PhantomCase a = core::makeAbdominalPhantom(isotropic);
        const core::PhantomCase b = core::makeAbdominalPhantom(anisotropic);
        const double mlA = double(core::countNonZero(a.liver)) * voxelMillilitres(a.ct.geometry());
        const double mlB = double(core::countNonZero(b.liver)) * voxelMillilitres(b.ct.geometry());
        QVERIFY2(std::abs(mlA - mlB) < 0.03 * mlA, qPrintable(QString("%1 mL vs %2 mL").arg(mlA).arg(mlB)));
        // The same organ in the same place: centroids agree within a voxel of the coarser grid.
        auto centroid = [](const core::PhantomCase& p) {
            Eigen::Vector3d sum = Eigen::Vector3d::Zero();
            double count = 0;
            const auto [nx, ny, nz] = p.liver.size();
            for (std::size_t z = 0; z < nz; ++z)
                for (std::size_t y = 0; y < ny; ++y)
                    for (std::size_t x = 0; x < nx; ++x)
                        if (p.liver.at(x, y, z)) sum += p.ct.geometry().indexToPhysical(Eigen::Vector3d(x, y, z)), count += 1;
            return Eigen::Vector3d(sum / count);
        };
        QVERIFY((centroid(a) - centroid(b)).norm() < 2.0);
    }

    void commandWritesFilesOnOneGrid() {
        QTemporaryDir dir;
        const QString out = dir.filePath("case");
        const test::ProcessResult result =
            test::runLiverseg({"phantom", "--out", out, "--seed", "9", "--size", "64,60,24", "--spacing", "6,6.5,10"});
        QVERIFY2(result.exitCode == 0 && !result.crashed, qPrintable(result.err));
        const std::filesystem::path folder = out.toStdString();
        const core::LoadedCt loaded = core::readCt(folder / "ct.nii.gz");
        const core::LabelMap liver = core::readLabelMapOnGrid(folder / "liver.nii.gz", loaded.volume.geometry());

        core::PhantomOptions options;
        options.seed = 9;
        options.size = {64, 60, 24};
        options.spacing = Eigen::Vector3d(6, 6.5, 10);
        const core::PhantomCase expected = core::makeAbdominalPhantom(options);
        QVERIFY2(loaded.volume.geometry().sameGridAs(expected.ct.geometry()),
                 qPrintable(QString::fromStdString(loaded.volume.geometry().differenceFrom(expected.ct.geometry()))));
        QVERIFY(loaded.volume.voxels() == expected.ct.voxels());
        QVERIFY(liver.voxels() == expected.liver.voxels());
        QVERIFY(core::countNonZero(liver) > 0);
    }

    void commandRejectsBadSizesAndSpacings_data() {
        QTest::addColumn<QStringList>("options");
        // Each row starts the executable (about a second with LibTorch loading): keep few.
        QTest::newRow("zero size") << QStringList{"--size", "0,1,2"};
        QTest::newRow("two numbers") << QStringList{"--size", "64,64"};
        QTest::newRow("negative spacing") << QStringList{"--spacing", "-1,1,1"};
    }
    void commandRejectsBadSizesAndSpacings() {
        QFETCH(QStringList, options);
        QTemporaryDir dir;
        const test::ProcessResult result = test::runLiverseg(QStringList{"phantom", "--out", dir.filePath("x")} + options);
        QCOMPARE(result.exitCode, 2);
        QVERIFY(!result.crashed);
        QVERIFY(!result.err.trimmed().isEmpty());
        QVERIFY(!QFileInfo::exists(dir.filePath("x/ct.nii.gz")));
    }
};

QTEST_GUILESS_MAIN(PhantomTest)
#include "test_phantom.moc"
