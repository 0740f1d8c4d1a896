// The viewer on a real abdominal CT (../shared/data, skipped when absent): the liver mask must
// appear on the screen's left (the patient's right) and the spine below the centre
// (anterior up), from a NIfTI file stored in RAS order.
#include "tests/support/TestSupport.h"

#include <QImage>
#include <QTemporaryDir>
#include <QtTest>

using namespace liverseg;

class TestViewerRealData : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void radiologicalScreenshotOfARealCt() {
        const auto ct = test::sharedData("ct_totalseg_small/ct.nii.gz");
        const auto liver = test::sharedData("ct_totalseg_small/liver_fast.nii.gz");
        if (!ct || !liver) QSKIP("../shared/data/ct_totalseg_small is not available");
        QTemporaryDir folder;
        const QString png = folder.filePath("shot.png");
        const auto result = test::runLiverseg({"view", QString::fromStdString(ct->string()), "--mask",
                                               QString::fromStdString(liver->string()), "--slice", "15",
                                               "--screenshot", png, "--size", "1000x800"});
        QVERIFY2(result.exitCode == 0 && !result.crashed, qPrintable(result.err));
        const QImage image(png);
        QCOMPARE(image.size(), QSize(1000, 800));

        double greenX = 0, greenCount = 0, boneY = 0, boneCount = 0;
        const int centreX = image.width() / 2;
        for (int y = 0; y < image.height(); ++y) {
            for (int x = 0; x < image.width(); ++x) {
                const QRgb pixel = image.pixel(x, y);
                if (qGreen(pixel) > qRed(pixel) + 40 && qGreen(pixel) > qBlue(pixel) + 40) {
                    greenX += x;
                    ++greenCount;
                }
                // White (bone above the abdomen window) in the middle band of the view, below
                // the toolbar and above the status bar: the vertebra.
                const bool inView = y > image.height() / 10 && y < image.height() * 94 / 100;
                if (inView && std::abs(x - centreX) < image.width() / 12 && qRed(pixel) > 245 && qGreen(pixel) > 245 &&
                    qBlue(pixel) > 245) {
                    boneY += y;
                    ++boneCount;
                }
            }
        }
        QVERIFY2(greenCount > 10000, qPrintable(QString::number(greenCount)));
        QVERIFY2(greenX / greenCount < 0.42 * image.width(), qPrintable(QString::number(greenX / greenCount)));
        QVERIFY2(boneCount > 300, qPrintable(QString::number(boneCount)));
        QVERIFY2(boneY / boneCount > 0.55 * image.height(), qPrintable(QString::number(boneY / boneCount)));
    }
};

QTEST_GUILESS_MAIN(TestViewerRealData)
#include "test_viewer_realdata.moc"
