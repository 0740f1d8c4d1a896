// The viewer's command line, parsed without any window.
#include "core/Errors.h"
#include "ui/ViewerDocument.h"
#include "ui/ViewerOptions.h"

#include <QtTest>

using namespace liverseg;
using ui::parseViewerOptions;
using ui::ViewerUsageError;

class TestViewerOptions : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void noArgumentsOpenAnEmptyViewer() {
        const auto options = parseViewerOptions({});
        QVERIFY(!options.ct);
        QVERIFY(!options.screenshot);
        QCOMPARE(options.size.width, 1200);
        QVERIFY(!parseViewerOptions({"view"}).ct);
    }

    void everyOptionIsRead() {
        const auto options = parseViewerOptions({"view", "ct.nii.gz", "--mask", "liver.nii.gz", "--slice=12",
                                                 "--window", "350", "--level", "-20", "--screenshot", "out.png",
                                                 "--size", "640x480"});
        QCOMPARE(QString::fromStdString(options.ct->string()), QString("ct.nii.gz"));
        QCOMPARE(QString::fromStdString(options.mask->string()), QString("liver.nii.gz"));
        QCOMPARE(*options.slice, 12);
        QCOMPARE(options.windowLevel->window, 350.0);
        QCOMPARE(options.windowLevel->level, -20.0);
        QCOMPARE(QString::fromStdString(options.screenshot->string()), QString("out.png"));
        QCOMPARE(options.size.width, 640);
        QCOMPARE(options.size.height, 480);
    }

    void viewIsOptionalBeforeTheCt() {
        QCOMPARE(QString::fromStdString(parseViewerOptions({"ct.nii.gz"}).ct->string()), QString("ct.nii.gz"));
    }

    void presetsByName() {
        QCOMPARE(parseViewerOptions({"--preset", "lung"}).windowLevel->level, -600.0);
        QCOMPARE(parseViewerOptions({"--preset=liver"}).windowLevel->window, 150.0);
    }

    void badCommandLinesAreRefusedWithAReason_data() {
        QTest::addColumn<QStringList>("arguments");
        QTest::addColumn<QString>("mentions");
        QTest::newRow("unknown option") << QStringList{"--colour", "red"} << "--colour";
        QTest::newRow("missing value") << QStringList{"ct.nii.gz", "--mask"} << "--mask";
        QTest::newRow("two CTs") << QStringList{"a.nii", "b.nii"} << "b.nii";
        QTest::newRow("mask without CT") << QStringList{"--mask", "m.nii"} << "CT";
        QTest::newRow("slice without CT") << QStringList{"--slice", "3"} << "CT";
        QTest::newRow("window without level") << QStringList{"ct.nii", "--window", "400"} << "--level";
        QTest::newRow("preset and window") << QStringList{"--preset", "bone", "--window", "1", "--level", "2"} << "--preset";
        QTest::newRow("unknown preset") << QStringList{"--preset", "brain"} << "abdomen, liver, bone, lung";
        QTest::newRow("zero window") << QStringList{"--window", "0", "--level", "40"} << "--window";
        QTest::newRow("not a number") << QStringList{"--window", "wide", "--level", "40"} << "wide";
        QTest::newRow("negative slice") << QStringList{"ct.nii", "--slice", "-1"} << "--slice";
        QTest::newRow("fractional slice") << QStringList{"ct.nii", "--slice", "2.5"} << "2.5";
        QTest::newRow("bad size") << QStringList{"--size", "big"} << "WIDTHxHEIGHT";
        QTest::newRow("tiny size") << QStringList{"--size", "10x10"} << "out of range";
        QTest::newRow("screenshot not png") << QStringList{"--screenshot", "shot.jpg"} << "PNG";
    }

    void badCommandLinesAreRefusedWithAReason() {
        QFETCH(QStringList, arguments);
        QFETCH(QString, mentions);
        std::vector<std::string> raw;
        for (const QString& argument : arguments) raw.push_back(argument.toStdString());
        try {
            parseViewerOptions(raw);
            QFAIL("accepted");
        } catch (const ViewerUsageError& error) {
            const QString message = QString::fromStdString(error.what());
            QVERIFY2(message.contains(mentions), qPrintable(message));
            QVERIFY(!message.contains('\n'));
        }
    }

    void helpWinsOverEverythingElse() {
        QVERIFY(parseViewerOptions({"view", "--bogus", "--help"}).help);
        QVERIFY(parseViewerOptions({"-h"}).help);
        QVERIFY(!parseViewerOptions({"ct.nii"}).help);
    }

    void sliceOutsideTheCtIsAnInputError() {
        core::Geometry geometry;
        geometry.size = {4, 4, 10};
        ui::requireAxialSlice(0, geometry);
        ui::requireAxialSlice(9, geometry);
        try {
            ui::requireAxialSlice(10, geometry);
            QFAIL("accepted");
        } catch (const core::InputError& error) {
            QCOMPARE(QString::fromStdString(error.what()), QString("--slice 10: the CT has 10 axial slices (0-9)"));
        }
    }
};

QTEST_GUILESS_MAIN(TestViewerOptions)
#include "test_viewer_options.moc"
