// Dataset detection, splits and preparation on the real data in ../shared/data (skipped
// without it).
#include "core/Dataset.h"
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/SliceCache.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <set>

using namespace liverseg;
namespace fs = std::filesystem;

class DatasetRealDataTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void liver2dIsATwoDimensionalDatasetSplitByVolume() {
        const auto folder = test::sharedData("liver2d");
        if (!folder) QSKIP("../shared/data/liver2d not present");
        const core::Dataset dataset = core::openDataset(*folder);
        QVERIFY(dataset.layout == core::DatasetLayout::Slices2D);
        QCOMPARE(dataset.cases.size(), std::size_t(434));
        QCOMPARE(dataset.groupCount(), std::size_t(84));
        const core::DatasetSplit split = core::splitByGroup(dataset, 0.2, 1);
        std::set<std::string> training, validation;
        for (std::size_t i : split.training) training.insert(dataset.cases[i].group);
        for (std::size_t i : split.validation) validation.insert(dataset.cases[i].group);
        QCOMPARE(validation.size(), std::size_t(17));  // round(0.2 x 84)
        for (const auto& group : validation) QVERIFY2(!training.count(group), group.c_str());

        // JPEG stored as three identical channels reads as 8-bit grey; masks are 0 or near 255.
        const core::Picture image = core::readGreyPicture(dataset.cases.front().image);
        QCOMPARE(image.width, std::size_t(256));
        QCOMPARE(image.height, std::size_t(256));
        QCOMPARE(image.components, 1);
        const core::Picture mask = core::readGreyPicture(dataset.cases.front().mask);
        const auto bright = std::count_if(mask.pixels.begin(), mask.pixels.end(), [](std::uint8_t v) { return v >= 128; });
        QVERIFY(bright > 0);
    }

    void totalSegmentatorCaseNeedsItsLiverLabel() {
        const auto folder = test::sharedData("ct_totalseg_small");
        if (!folder) QSKIP("../shared/data/ct_totalseg_small not present");
        core::DatasetOptions options;
        options.caseMaskName = "labels117.nii.gz";
        const core::Dataset dataset = core::openDataset(*folder, options);
        QCOMPARE(dataset.cases.size(), std::size_t(1));
        QTemporaryDir dir;
        core::SlicePreparation preparation;
        preparation.side = 128;
        preparation.pixelSpacingMm = 3.0;  // the CT's own spacing: no resampling
        try {
            core::SliceCache cache(dataset, preparation, fs::path(dir.path().toStdString()) / "a");
            QFAIL("a 117-label map was taken as liver");
        } catch (const core::InputError& error) {
            QVERIFY2(QString(error.what()).contains("--liver-labels"), error.what());
        }
        preparation.liverLabels = core::LiverLabels::parse("5");
        const core::SliceCache cache(dataset, preparation, fs::path(dir.path().toStdString()) / "b");
        std::size_t liver = 0;
        for (std::size_t z = 0; z < cache.caseAt(0).sliceCount(); ++z) liver += cache.caseAt(0).liverPixels(z);
        QCOMPARE(liver, std::size_t(38634));  // the README's liver voxel count, unchanged at 3 mm
    }
};

QTEST_APPLESS_MAIN(DatasetRealDataTest)
#include "test_dataset_realdata.moc"
