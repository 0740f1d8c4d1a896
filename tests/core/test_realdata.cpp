// Reads the real CT in ../shared/data (skipped when absent).
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace liverseg;

class RealDataTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void dicomSeriesMatchesItsSegmentationGrid() {
        const auto folder = test::sharedData("ct_dicom_3slice");
        if (!folder) QSKIP("../shared/data/ct_dicom_3slice is absent");
        const core::LoadedCt ct = core::readCt(*folder);
        QCOMPARE(ct.source.format, std::string("DICOM"));
        QVERIFY(ct.source.series.has_value());
        QCOMPARE(ct.source.series->modality, std::string("CT"));
        QCOMPARE(ct.source.series->files.size(), std::size_t(3));
        QCOMPARE(ct.source.otherSeries.size(), std::size_t(1));  // the DICOM-SEG object
        QVERIFY(!ct.source.notes.empty());                       // says which series it picked
        QCOMPARE(ct.volume.size()[0], std::size_t(512));
        QCOMPARE(ct.volume.size()[2], std::size_t(3));
        // Rescale slope/intercept applied: air near -1000 HU, not raw stored values.
        const core::ValueRange range = core::valueRange(ct.volume);
        QVERIFY(range.min < -900);
        QVERIFY(range.max > 500);
        const core::LabelMap liver = core::readLabelMapOnGrid(*folder / "liver_seg.nrrd", ct.volume.geometry());
        QVERIFY(core::countNonZero(liver) > 1000);
    }

    void dicomSeriesCanBeChosenByUid() {
        const auto folder = test::sharedData("ct_dicom_3slice");
        if (!folder) QSKIP("../shared/data/ct_dicom_3slice is absent");
        const core::LoadedCt ct = core::readCt(*folder);
        core::CtReadOptions options;
        options.seriesUid = ct.source.series->uid;
        QCOMPARE(core::readCt(*folder, options).volume.voxels(), ct.volume.voxels());
        options.seriesUid = "1.2.3.4.5";
        QVERIFY_THROWS_EXCEPTION(core::InputError, core::readCt(*folder, options));
    }

    void singleDicomFileReadsItsSeries() {
        const auto file = test::sharedData("ct_dicom_3slice/02.dcm");
        if (!file) QSKIP("../shared/data/ct_dicom_3slice is absent");
        QCOMPARE(core::readCt(*file).volume.size()[2], std::size_t(3));
    }

    void nonCtModalityIsReadWithAWarning() {
        const auto folder = test::sharedData("ct_dicom_3slice");
        if (!folder) QSKIP("../shared/data/ct_dicom_3slice is absent");
        QTemporaryDir copy;
        for (const char* name : {"01.dcm", "02.dcm", "03.dcm"}) {
            std::string bytes = test::readBytes(*folder / name);
            // (0008,0060) "CT" -> "MR", implicit VR (4-byte length) as in these files.
            const std::string tag("\x08\x00\x60\x00\x02\x00\x00\x00" "CT", 10);
            const auto at = bytes.find(tag);
            QVERIFY(at != std::string::npos);
            bytes.replace(at + 8, 2, "MR");
            test::writeBytes(copy.filePath(name).toStdString(), bytes);
        }
        const core::LoadedCt mr = core::readCt(copy.path().toStdString());
        QCOMPARE(mr.source.series->modality, std::string("MR"));
        QVERIFY(!mr.source.warnings.empty());
        const test::ProcessResult result = test::runLiverseg({"info", copy.path()});
        QCOMPARE(result.exitCode, 0);
        QVERIFY(result.err.contains("not CT"));
    }

    void totalSegmentatorCtAndLabelsShareOneGrid() {
        const auto folder = test::sharedData("ct_totalseg_small");
        if (!folder) QSKIP("../shared/data/ct_totalseg_small is absent");
        const core::LoadedCt ct = core::readCt(*folder / "ct.nii.gz");
        QCOMPARE(ct.volume.size(), (std::array<std::size_t, 3>{122, 101, 30}));
        for (int d = 0; d < 3; ++d) QVERIFY(std::abs(ct.volume.geometry().spacing[d] - 3.0) < 1e-4);
        const core::LabelMap labels = core::readLabelMapOnGrid(*folder / "labels117.nii.gz", ct.volume.geometry());
        const core::LabelMap fast = core::readLabelMapOnGrid(*folder / "liver_fast.nii.gz", ct.volume.geometry());
        std::size_t liver = 0;
        for (std::uint8_t v : labels.voxels()) liver += v == 5;
        QCOMPARE(liver, std::size_t(38634));
        QCOMPARE(core::countNonZero(fast), std::size_t(39350));
    }

    void infoJsonDescribesTheDicomSeries() {
        const auto folder = test::sharedData("ct_dicom_3slice");
        if (!folder) QSKIP("../shared/data/ct_dicom_3slice is absent");
        const test::ProcessResult result = test::runLiverseg({"info", QString::fromStdString(folder->string()), "--json"});
        QCOMPARE(result.exitCode, 0);
        QVERIFY(result.out.contains("\"modality\": \"CT\""));
        QVERIFY(result.out.contains("\"series_uid\""));
    }
};

QTEST_GUILESS_MAIN(RealDataTest)
#include "test_realdata.moc"
