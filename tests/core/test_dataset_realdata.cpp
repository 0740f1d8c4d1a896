// Dataset detection, splits and preparation on the real data in ../shared/data (skipped
// without it).
#include "core/Dataset.h"
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/SliceCache.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <set>
#include <vector>

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

    // The bundled weights read HU through the window [-10, 150] HU as liver2d's grey 0-255
    // (assets/models/MODEL_CARD.md). Anchor: the liver's median grey in liver2d, read back
    // through that window, must be a liver HU of ct_totalseg_small (between its 10th and
    // 90th percentile), so that the two kinds of input show the liver alike.
    void liver2dGreyWindowMatchesRealLiverHu() {
        const auto pictures = test::sharedData("liver2d");
        const auto volume = test::sharedData("ct_totalseg_small");
        if (!pictures || !volume) QSKIP("../shared/data/liver2d or ct_totalseg_small not present");
        std::vector<double> grey;
        for (const auto& entry : fs::directory_iterator(*pictures / "images")) {
            const core::Picture image = core::readGreyPicture(entry.path());
            const core::Picture mask = core::readGreyPicture(*pictures / "masks" / entry.path().filename());
            for (std::size_t i = 0; i < image.pixels.size(); ++i) {
                if (mask.pixels[i] >= 128) grey.push_back(image.pixels[i]);
            }
        }
        const double lowHu = -10, highHu = 150;
        const double medianGrey = percentile(grey, 0.5);
        const double liverHuSeenInPictures = lowHu + medianGrey / 255.0 * (highHu - lowHu);

        const core::LoadedCt ct = core::readCt(*volume / "ct.nii.gz");
        const core::LabelMap labels = core::readLabelMapOnGrid(*volume / "labels117.nii.gz", ct.volume.geometry());
        std::vector<double> liverHu;
        for (std::size_t i = 0; i < labels.voxels().size(); ++i) {
            if (labels.voxels()[i] == 5) liverHu.push_back(ct.volume.voxels()[i]);
        }
        const double p10 = percentile(liverHu, 0.1), p90 = percentile(liverHu, 0.9);
        qInfo("liver2d liver median grey %.0f -> %.1f HU; ct_totalseg_small liver HU p10 %.0f, median %.0f, p90 %.0f",
              medianGrey, liverHuSeenInPictures, p10, percentile(liverHu, 0.5), p90);
        QVERIFY(liverHuSeenInPictures >= p10 && liverHuSeenInPictures <= p90);
    }

private:
    static double percentile(std::vector<double> values, double fraction) {
        std::sort(values.begin(), values.end());
        return values[std::size_t(fraction * double(values.size() - 1))];
    }
};

QTEST_APPLESS_MAIN(DatasetRealDataTest)
#include "test_dataset_realdata.moc"
