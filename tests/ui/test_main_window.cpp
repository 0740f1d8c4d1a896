// Drives the viewer's main window as a person would (under Xvfb): open a CT, step through
// slices, change the window, survive a broken file, and take a screenshot from the shell.
#include "core/Image.h"
#include "core/ImageIO.h"
#include "render/SliceView.h"
#include "render/VtkOpenGLWidget.h"
#include "tests/support/TestSupport.h"
#include "ui/MainWindow.h"

#include <QAction>
#include <QApplication>
#include <QImage>
#include <QLabel>
#include <QMessageBox>
#include <QSignalSpy>
#include <QSlider>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QtTest>

#include <memory>

using namespace liverseg;

namespace {

constexpr std::size_t kNx = 64, kNy = 48, kNz = 12;

core::Geometry phantomGeometry() {
    core::Geometry geometry;
    geometry.size = {kNx, kNy, kNz};
    geometry.spacing = Eigen::Vector3d(0.8, 0.8, 2.5);
    geometry.origin = Eigen::Vector3d(-25, -20, -100);
    return geometry;
}

bool insideBody(std::size_t i, std::size_t j) {
    const double x = (double(i) - 31.5) / 28, y = (double(j) - 23.5) / 20;
    return x * x + y * y <= 1;
}

// Air around an elliptic body of 40 HU; the "liver" is the body's patient-right third.
core::CtVolume phantomCt() {
    core::CtVolume volume(phantomGeometry(), -1000);
    for (std::size_t k = 0; k < kNz; ++k) {
        for (std::size_t j = 0; j < kNy; ++j) {
            for (std::size_t i = 0; i < kNx; ++i) {
                if (insideBody(i, j)) volume.at(i, j, k) = 40;
            }
        }
    }
    return volume;
}

core::LabelMap phantomLiver() {
    core::LabelMap labels(phantomGeometry(), 0);
    for (std::size_t k = 0; k < kNz; ++k) {
        for (std::size_t j = 0; j < kNy; ++j) {
            for (std::size_t i = 0; i < 20; ++i) labels.at(i, j, k) = insideBody(i, j) ? 1 : 0;
        }
    }
    return labels;
}

QString label(const QWidget& window, const char* name) {
    const auto* found = window.findChild<QLabel*>(name);
    return found ? found->text() : QString("<no %1>").arg(name);
}

bool greenish(QRgb pixel) { return qGreen(pixel) > qRed(pixel) + 40 && qGreen(pixel) > qBlue(pixel) + 40; }

}  // namespace

class TestMainWindow : public QObject {
    Q_OBJECT

    QTemporaryDir folder_;
    QString ctPath_, maskPath_, brokenPath_, wrongGridMaskPath_;
    std::unique_ptr<ui::MainWindow> window_;

    bool loadAndWait(const std::function<void()>& start) {
        QSignalSpy finished(window_.get(), &ui::MainWindow::loadFinished);
        start();
        if (!finished.wait(30000)) return false;
        return finished.first().first().toBool();
    }

private Q_SLOTS:
    void initTestCase() {
        QVERIFY(folder_.isValid());
        ctPath_ = folder_.filePath("phantom.nii.gz");
        maskPath_ = folder_.filePath("liver.nii.gz");
        brokenPath_ = folder_.filePath("broken.nii.gz");
        wrongGridMaskPath_ = folder_.filePath("other_grid.nii.gz");
        core::writeCtVolume(phantomCt(), ctPath_.toStdString());
        core::writeLabelMap(phantomLiver(), maskPath_.toStdString());
        test::writeBytes(brokenPath_.toStdString(), "this is not a NIfTI file at all");
        auto otherGrid = phantomGeometry();
        otherGrid.size = {kNx, kNy, kNz - 1};
        core::writeLabelMap(core::LabelMap(otherGrid, 1), wrongGridMaskPath_.toStdString());
    }

    void init() {
        window_ = std::make_unique<ui::MainWindow>();
        window_->resize(900, 700);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
    }

    void cleanup() { window_.reset(); }

    void startsEmptyWithAHint() {
        const auto* hint = window_->findChild<QLabel*>("emptyHint");
        QVERIFY(hint && hint->isVisible());
        QVERIFY(hint->text().contains("Open CT"));
        QVERIFY(!window_->sliceView()->isVisible());
        QVERIFY(!window_->document().ct);
    }

    void openingACtShowsItsSlices() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        QVERIFY(window_->sliceView()->isVisible());
        const auto* slider = window_->findChild<QSlider*>("sliceSlider");
        QCOMPARE(slider->minimum(), 0);
        QCOMPARE(slider->maximum(), int(kNz) - 1);
        QCOMPARE(slider->value(), int(kNz) / 2);
        QCOMPARE(label(*window_, "sliceLabel"), QString("Slice 6 (0-11)"));
        QCOMPARE(label(*window_, "windowLabel"), QString("W 400 L 40"));
        QCOMPARE(label(*window_, "orientationLabel"), QString("Grid LPS"));
        QVERIFY(window_->windowTitle().contains("phantom.nii.gz"));
        QVERIFY2(window_->statusBar()->currentMessage().contains("64 x 48 x 12"), qPrintable(window_->statusBar()->currentMessage()));
    }

    void aSecondCtReplacesTheFirstAndStartsInItsMiddle() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        QVERIFY(loadAndWait([this]() { window_->openMask(maskPath_); }));
        auto taller = phantomGeometry();
        taller.size = {kNx, kNy, 30};
        const QString tallerPath = folder_.filePath("taller.nrrd");
        core::writeCtVolume(core::CtVolume(taller, 40), tallerPath.toStdString());
        QVERIFY(loadAndWait([this, tallerPath]() { window_->openCt(tallerPath); }));
        QCOMPARE(window_->sliceView()->slice(), 15);
        QCOMPARE(window_->findChild<QSlider*>("sliceSlider")->maximum(), 29);
        QCOMPARE(window_->findChild<QSlider*>("sliceSlider")->value(), 15);
        QCOMPARE(label(*window_, "sliceLabel"), QString("Slice 15 (0-29)"));
        QVERIFY(!window_->document().mask);  // the mask belonged to the other CT
        QVERIFY(!window_->sliceView()->scene().overlay(render::OverlaySlot::A));
    }

    void keyboardWheelAndSliderMoveTheSlice() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        window_->activateWindow();  // shortcuts go to the active window
        QVERIFY(QTest::qWaitForWindowActive(window_.get()));
        QTest::keyClick(window_.get(), Qt::Key_PageUp);
        QCOMPARE(window_->sliceView()->slice(), 7);
        QCOMPARE(label(*window_, "sliceLabel"), QString("Slice 7 (0-11)"));
        QTest::keyClick(window_.get(), Qt::Key_PageDown);
        QTest::keyClick(window_.get(), Qt::Key_PageDown);
        QCOMPARE(window_->sliceView()->slice(), 5);

        auto* slider = window_->findChild<QSlider*>("sliceSlider");
        slider->setValue(11);
        QCOMPARE(window_->sliceView()->slice(), 11);
        QTest::keyClick(window_.get(), Qt::Key_PageUp);  // stays on the last slice
        QCOMPARE(window_->sliceView()->slice(), 11);

        render::SliceView* view = window_->sliceView();
        const QPointF centre(view->width() / 2.0, view->height() / 2.0);
        QWheelEvent wheelDown(centre, view->mapToGlobal(centre), QPoint(), QPoint(0, -240), Qt::NoButton,
                              Qt::NoModifier, Qt::NoScrollPhase, false);
        QApplication::sendEvent(view, &wheelDown);
        QCOMPARE(view->slice(), 9);
        QCOMPARE(slider->value(), 9);
    }

    void presetsAndRightDragSetTheWindow() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        auto* bone = window_->findChild<QAction*>("preset_bone");
        QVERIFY(bone);
        bone->trigger();
        QCOMPARE(label(*window_, "windowLabel"), QString("W 1800 L 400"));
        QVERIFY(bone->isChecked());
        bone->trigger();  // again: still the bone window, still checked
        QVERIFY(bone->isChecked());

        render::SliceView* view = window_->sliceView();
        const QPoint start(view->width() / 2, view->height() / 2);
        QTest::mousePress(view, Qt::RightButton, {}, start);
        QTest::mouseMove(view, start + QPoint(40, 0));
        QTest::mouseRelease(view, Qt::RightButton, {}, start + QPoint(40, 0));
        QVERIFY(view->windowLevel().window > 1800);
        QVERIFY(!bone->isChecked());
        QVERIFY(label(*window_, "windowLabel") != "W 1800 L 400");
    }

    void thePointerReportsHuAndPosition() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        render::SliceView* view = window_->sliceView();
        QTest::mouseMove(view, QPoint(view->width() / 2, view->height() / 2));
        const QString probe = label(*window_, "probeLabel");
        QVERIFY2(probe.startsWith("40 HU at ("), qPrintable(probe));
        QVERIFY2(probe.contains("mm LPS, voxel ("), qPrintable(probe));
        QVERIFY2(probe.endsWith(", 6)"), qPrintable(probe));  // the shown slice
        QTest::mouseMove(view, QPoint(2, 2));  // off the image
        QCOMPARE(label(*window_, "probeLabel"), QString());
    }

    void aMaskIsDrawnOnTheCt() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        QVERIFY(loadAndWait([this]() { window_->openMask(maskPath_); }));
        QVERIFY(window_->document().mask);
        QVERIFY(window_->statusBar()->currentMessage().contains("liver.nii.gz"));
        const QImage image = window_->sliceView()->grabFramebuffer();
        // The mask is the patient's right third: on the left of the screen only.
        int greenLeft = 0, greenRight = 0;
        for (int y = 0; y < image.height(); y += 4) {
            for (int x = 0; x < image.width(); x += 4) {
                if (greenish(image.pixel(x, y))) (x < image.width() / 2 ? greenLeft : greenRight) += 1;
            }
        }
        QVERIFY2(greenLeft > 100 && greenRight == 0, qPrintable(QString("%1 / %2").arg(greenLeft).arg(greenRight)));
    }

    void aBrokenFileIsReportedAndTheShownCtStays() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        const auto shown = window_->document().ct;
        window_->sliceView()->setSlice(3);

        QVERIFY(!loadAndWait([this]() { window_->openCt(brokenPath_); }));
        QVERIFY2(window_->lastError().contains("broken.nii.gz"), qPrintable(window_->lastError()));
        QVERIFY(!window_->lastError().contains('\n'));
        QCOMPARE(window_->statusBar()->currentMessage(), window_->lastError());
        auto* box = window_->findChild<QMessageBox*>("errorBox");
        QVERIFY(box && box->isVisible());
        QCOMPARE(box->text(), window_->lastError());
        box->close();

        QCOMPARE(window_->document().ct, shown);
        QCOMPARE(window_->sliceView()->slice(), 3);
        QCOMPARE(label(*window_, "sliceLabel"), QString("Slice 3 (0-11)"));
        // Still usable afterwards.
        QVERIFY(loadAndWait([this]() { window_->openMask(maskPath_); }));
    }

    void aMaskOffTheCtGridIsRefused() {
        QVERIFY(loadAndWait([this]() { window_->openCt(ctPath_); }));
        QVERIFY(!loadAndWait([this]() { window_->openMask(wrongGridMaskPath_); }));
        QVERIFY2(window_->lastError().contains("other_grid.nii.gz"), qPrintable(window_->lastError()));
        QVERIFY(!window_->document().mask);
        QVERIFY(window_->document().ct);
    }

    void screenshotFromTheCommandLine() {
        const QString png = folder_.filePath("shot.png");
        const auto result = test::runLiverseg({"view", ctPath_, "--mask", maskPath_, "--slice", "4", "--preset",
                                               "liver", "--screenshot", png, "--size", "640x480"});
        QVERIFY2(result.exitCode == 0 && !result.crashed, qPrintable(result.err));
        QImage image(png);
        QVERIFY(!image.isNull());
        QCOMPARE(image.size(), QSize(640, 480));
        int green = 0, black = 0, grey = 0;
        for (int y = 0; y < image.height(); ++y) {
            for (int x = 0; x < image.width(); ++x) {
                const QRgb pixel = image.pixel(x, y);
                if (greenish(pixel)) ++green;
                if (qRed(pixel) < 3 && qGreen(pixel) < 3 && qBlue(pixel) < 3) ++black;  // air
                if (std::abs(qRed(pixel) - 94) < 6 && std::abs(qGreen(pixel) - 94) < 6) ++grey;  // 40 HU in W150/L60
            }
        }
        QVERIFY2(green > 2000 && black > 2000 && grey > 2000,
                 qPrintable(QString("green %1 black %2 grey %3").arg(green).arg(black).arg(grey)));
    }

    void screenshotOfBadInputFailsWithOneLine() {
        const QString png = folder_.filePath("never.png");
        auto result = test::runLiverseg({"view", brokenPath_, "--screenshot", png});
        QCOMPARE(result.exitCode, 2);
        QVERIFY(!result.crashed);
        QCOMPARE(result.err.trimmed().count('\n'), 0);
        QVERIFY2(result.err.contains("broken.nii.gz"), qPrintable(result.err));
        QVERIFY(!QFile::exists(png));

        result = test::runLiverseg({"view", ctPath_, "--slice", "12", "--screenshot", png});
        QCOMPARE(result.exitCode, 2);
        QVERIFY2(result.err.contains("0-11"), qPrintable(result.err));

        result = test::runLiverseg({"view", ctPath_, "--mask", wrongGridMaskPath_, "--screenshot", png});
        QCOMPARE(result.exitCode, 2);
        QVERIFY(!QFile::exists(png));

        result = test::runLiverseg({"view", ctPath_, "--preset", "brain", "--screenshot", png});
        QCOMPARE(result.exitCode, 2);
        QVERIFY2(result.err.contains("abdomen, liver, bone, lung"), qPrintable(result.err));
    }

    void theViewWordIsOptional() {
        const QString png = folder_.filePath("plain.png");
        const auto result = test::runLiverseg({ctPath_, "--screenshot", png, "--size", "400x300"});
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        QCOMPARE(QImage(png).size(), QSize(400, 300));
    }

    void emptyScreenshotShowsTheHint() {
        const QString png = folder_.filePath("empty.png");
        const auto result = test::runLiverseg({"--screenshot", png, "--size", "800x600"});
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        QCOMPARE(QImage(png).size(), QSize(800, 600));
    }
};

int main(int argc, char** argv) {
    render::VtkOpenGLWidget::installDefaultSurfaceFormat();
    QApplication application(argc, argv);
    TestMainWindow test;
    return QTest::qExec(&test, argc, argv);
}
#include "test_main_window.moc"
