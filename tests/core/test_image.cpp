#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "core/Image.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace liverseg;

class ImageTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void indexToPhysicalFollowsDirectionAndSpacing() {
        const core::Geometry g = test::obliqueGeometry(4, 5, 6);
        const Eigen::Vector3d index(2, 3, 1);
        const Eigen::Vector3d expected = g.origin + g.direction.col(0) * 2 * 0.7 +
                                         g.direction.col(1) * 3 * 0.9 + g.direction.col(2) * 1 * 2.5;
        QVERIFY((g.indexToPhysical(index) - expected).norm() < 1e-9);
        QVERIFY((g.physicalToIndex(expected) - index).norm() < 1e-9);
    }

    void sameGridDetectsEachDifference() {
        const core::Geometry g = test::obliqueGeometry(4, 5, 6);
        QVERIFY(g.sameGridAs(g));
        core::Geometry other = g;
        other.size[2] = 7;
        QVERIFY(g.differenceFrom(other).find("size") == 0);
        other = g;
        other.spacing[1] += 0.01;
        QVERIFY(g.differenceFrom(other).find("spacing") == 0);
        other = g;
        other.origin[0] += 0.5;
        QVERIFY(g.differenceFrom(other).find("origin") == 0);
        other = g;
        other.direction(0, 0) = -other.direction(0, 0);
        QVERIFY(g.differenceFrom(other).find("direction") == 0);
        other = g;
        other.origin[0] += 1e-6;  // below tolerance
        QVERIFY(g.sameGridAs(other));
    }

    void voxelsAreStoredXFastest() {
        core::Geometry g;
        g.size = {3, 2, 2};
        core::CtVolume volume(g, 0);
        volume.at(2, 1, 1) = 7;
        QCOMPARE(volume.voxels()[2 + 3 * (1 + 2 * 1)], std::int16_t(7));
        QCOMPARE(volume.slice(1)[2 + 3 * 1], std::int16_t(7));
        QCOMPARE(core::valueRange(volume).max, 7.0);
        QCOMPARE(core::valueRange(volume).min, 0.0);
    }

    void imageRejectsMismatchedVoxelCount() {
        core::Geometry g;
        g.size = {2, 2, 2};
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, core::LabelMap(g, std::vector<std::uint8_t>(7)));
    }

    void orientationCodes() {
        QCOMPARE(core::orientationCode(Eigen::Matrix3d::Identity()), std::string("LPS"));
        Eigen::Matrix3d ras = Eigen::Matrix3d::Identity();
        ras(0, 0) = -1;
        ras(1, 1) = -1;
        QCOMPARE(core::orientationCode(ras), std::string("RAS"));
        QVERIFY(!core::isOblique(ras));
        QVERIFY(core::isOblique(test::obliqueGeometry(2, 2, 2).direction));
    }

    void fullExtensionKnowsCompoundSuffixes() {
        QCOMPARE(core::fullExtension("/a/b/ct.NII.GZ"), std::string(".nii.gz"));
        QCOMPARE(core::fullExtension("mask.nrrd"), std::string(".nrrd"));
        QCOMPARE(core::fullExtension("folder/noext"), std::string());
    }

    void atomicWriteLeavesTargetUntouchedOnFailure() {
        QTemporaryDir dir;
        const std::filesystem::path target = dir.filePath("mask.nii.gz").toStdString();
        test::writeBytes(target, "previous");
        QVERIFY_THROWS_EXCEPTION(std::runtime_error, core::writeAtomically(target, [](const std::filesystem::path& tmp) {
                                     test::writeBytes(tmp, "partial");
                                     throw std::runtime_error("disk full");
                                 }));
        QCOMPARE(test::readBytes(target), std::string("previous"));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);  // no temporary left
        core::writeAtomically(target, [](const std::filesystem::path& tmp) { test::writeBytes(tmp, "new"); });
        QCOMPARE(test::readBytes(target), std::string("new"));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);
    }

    void atomicWriteIntoMissingFolderIsInputError() {
        QVERIFY_THROWS_EXCEPTION(core::InputError, core::writeAtomically("/nonexistent/dir/x.nii", [](const auto&) {}));
    }
};

QTEST_GUILESS_MAIN(ImageTest)
#include "test_image.moc"
