#include "core/Errors.h"
#include "core/ImageIO.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <random>

using namespace liverseg;

namespace {

core::CtVolume randomCt(const core::Geometry& geometry, unsigned seed) {
    core::CtVolume ct(geometry);
    std::mt19937 generator(seed);
    std::uniform_int_distribution<int> hu(-1024, 3071);
    for (auto& voxel : ct.voxels()) voxel = std::int16_t(hu(generator));
    ct.voxels().front() = -32768;  // the int16 extremes must survive too
    ct.voxels().back() = 32767;
    return ct;
}

core::LabelMap randomLabels(const core::Geometry& geometry, unsigned seed) {
    core::LabelMap labels(geometry);
    std::mt19937 generator(seed);
    std::uniform_int_distribution<int> label(0, 255);
    for (auto& voxel : labels.voxels()) voxel = std::uint8_t(label(generator));
    return labels;
}

// NIfTI stores geometry in float32, the others in text with full precision.
double geometryTolerance(const std::string& extension) { return extension.rfind(".nii", 0) == 0 ? 2e-5 : 1e-9; }

void compareGeometry(const core::Geometry& actual, const core::Geometry& expected, double tolerance) {
    QVERIFY2(actual.sameGridAs(expected, tolerance), actual.differenceFrom(expected, tolerance).c_str());
}

}  // namespace

class ImageIoTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void roundTripKeepsVoxelsAndGeometry_data() {
        QTest::addColumn<QString>("extension");
        QTest::addColumn<bool>("oblique");
        for (const char* extension : {".nii", ".nii.gz", ".nrrd", ".mha"}) {
            QTest::newRow((std::string(extension) + " oblique").c_str()) << extension << true;
            QTest::newRow((std::string(extension) + " flipped axes").c_str()) << extension << false;
        }
    }
    void roundTripKeepsVoxelsAndGeometry() {
        QFETCH(QString, extension);
        QFETCH(bool, oblique);
        core::Geometry geometry = test::obliqueGeometry(13, 11, 7);
        if (!oblique) {
            geometry.direction = Eigen::Vector3d(-1, -1, 1).asDiagonal();  // RAS-stored, as many NIfTI files
        }
        QTemporaryDir dir;
        const std::string ext = extension.toStdString();
        const std::filesystem::path ctPath = dir.filePath("ct" + extension).toStdString();
        const std::filesystem::path maskPath = dir.filePath("mask" + extension).toStdString();
        const core::CtVolume ct = randomCt(geometry, 1);
        const core::LabelMap labels = randomLabels(geometry, 2);
        core::writeCtVolume(ct, ctPath);
        core::writeLabelMap(labels, maskPath);

        const core::LoadedCt loaded = core::readCt(ctPath);
        QVERIFY(loaded.volume.voxels() == ct.voxels());
        compareGeometry(loaded.volume.geometry(), geometry, geometryTolerance(ext));
        const core::LabelMap reread = core::readLabelMapOnGrid(maskPath, loaded.volume.geometry());
        QVERIFY(reread.voxels() == labels.voxels());
        compareGeometry(reread.geometry(), geometry, geometryTolerance(ext));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 2);  // no temporaries left
    }

    void crossFormatConversionKeepsTheGrid() {
        // NIfTI (RAS on disk) -> NRRD (LPS on disk) -> NIfTI must land on the same grid.
        QTemporaryDir dir;
        const core::Geometry geometry = test::obliqueGeometry(9, 8, 5);
        const core::LabelMap labels = randomLabels(geometry, 3);
        core::writeLabelMap(labels, dir.filePath("a.nii.gz").toStdString());
        const core::LabelMap a = core::readLabelMap(dir.filePath("a.nii.gz").toStdString());
        core::writeLabelMap(a, dir.filePath("b.nrrd").toStdString());
        const core::LabelMap b = core::readLabelMap(dir.filePath("b.nrrd").toStdString());
        QVERIFY(b.voxels() == labels.voxels());
        compareGeometry(b.geometry(), geometry, 2e-5);
    }

    void writingOverwritesAtomically() {
        QTemporaryDir dir;
        const std::filesystem::path path = dir.filePath("mask.nii.gz").toStdString();
        core::Geometry geometry;
        geometry.size = {4, 4, 4};
        core::writeLabelMap(core::LabelMap(geometry, 1), path);
        core::writeLabelMap(core::LabelMap(geometry, 2), path);
        QCOMPARE(int(core::readLabelMap(path).voxels()[0]), 2);
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);
    }

    void unsupportedOutputExtensionIsRefused() {
        QTemporaryDir dir;
        core::Geometry geometry;
        geometry.size = {2, 2, 2};
        QVERIFY_THROWS_EXCEPTION(core::InputError,
                                 core::writeLabelMap(core::LabelMap(geometry), dir.filePath("m.png").toStdString()));
        QVERIFY(QDir(dir.path()).isEmpty());
    }

    void labelMapOnAnotherGridIsRefused() {
        QTemporaryDir dir;
        const core::Geometry geometry = test::obliqueGeometry(6, 6, 6);
        core::writeLabelMap(core::LabelMap(geometry, 1), dir.filePath("m.nrrd").toStdString());
        core::Geometry shifted = geometry;
        shifted.origin[2] += 2.5;
        try {
            core::readLabelMapOnGrid(dir.filePath("m.nrrd").toStdString(), shifted);
            QFAIL("expected InputError");
        } catch (const core::InputError& error) {
            const std::string message = error.what();
            QVERIFY2(message.find("m.nrrd") != std::string::npos, error.what());
            QVERIFY2(message.find("origin") != std::string::npos, error.what());
        }
    }
};

QTEST_GUILESS_MAIN(ImageIoTest)
#include "test_imageio.moc"
