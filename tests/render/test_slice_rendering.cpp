// Renders slices through the Qt 6 VTK host under Xvfb and reads the pixels back: grey values
// follow the window/level, overlays colour exactly their voxels, the picture follows the
// direction matrix (radiological convention) and the pixel spacing.
#include "core/Image.h"
#include "render/SliceView.h"

#include <QApplication>
#include <QImage>
#include <QtTest>

#include <vtkCamera.h>
#include <vtkRenderer.h>

#include <cmath>
#include <memory>

using namespace liverseg;

namespace {

constexpr std::size_t kNx = 16, kNy = 12, kNz = 5;
constexpr int kShownSlice = 2;
constexpr std::int16_t kLevelHu = 40, kQuarterHu = 140, kAirHu = -1000, kBoneHu = 1000;

core::Geometry phantomGeometry(const Eigen::Matrix3d& direction) {
    core::Geometry geometry;
    geometry.size = {kNx, kNy, kNz};
    geometry.spacing = Eigen::Vector3d(2.0, 3.0, 2.5);  // anisotropic in plane on purpose
    geometry.origin = Eigen::Vector3d(-15, 40, -200);
    geometry.direction = direction;
    return geometry;
}

// Slice 2 holds four quadrants with known HU: (i < 8, j < 6) at the level, (i >= 8, j < 6)
// air, (i < 8, j >= 6) a quarter window above the level, (i >= 8, j >= 6) bone. Every other
// slice is air, so showing the wrong slice is visible.
std::int16_t quadrantHu(std::size_t i, std::size_t j) {
    if (j < kNy / 2) return i < kNx / 2 ? kLevelHu : kAirHu;
    return i < kNx / 2 ? kQuarterHu : kBoneHu;
}

std::shared_ptr<core::CtVolume> phantom(const Eigen::Matrix3d& direction) {
    auto volume = std::make_shared<core::CtVolume>(phantomGeometry(direction), kAirHu);
    for (std::size_t j = 0; j < kNy; ++j) {
        for (std::size_t i = 0; i < kNx; ++i) volume->at(i, j, kShownSlice) = quadrantHu(i, j);
    }
    return volume;
}

struct Rendered {
    QImage image;
    double pixelsPerMm = 0;
};

int grey(QRgb pixel) { return qGreen(pixel); }

bool isGrey(QRgb pixel) {
    return std::abs(qRed(pixel) - qGreen(pixel)) <= 2 && std::abs(qGreen(pixel) - qBlue(pixel)) <= 2;
}

}  // namespace

class TestSliceRendering : public QObject {
    Q_OBJECT

    std::unique_ptr<render::SliceView> view_;

    void showVolume(std::shared_ptr<core::CtVolume> volume) {
        view_->setVolume(std::move(volume));
        view_->setSlice(kShownSlice);
        view_->scene().setSmoothCt(false);  // nearest voxel: exact values at voxel centres
        view_->setWindowLevel({400, 40});
    }

    Rendered render() {
        Rendered rendered;
        rendered.image = view_->grabFramebuffer();
        const double scale = view_->scene().renderer()->GetActiveCamera()->GetParallelScale();
        rendered.pixelsPerMm = rendered.image.height() / (2 * scale);
        return rendered;
    }

    // Where the centre of voxel (i, j) of an LPS-identity grid must appear: the patient's
    // right (low i) on the left, anterior (low j) at the top, spacing respected.
    static QPoint expectedPixel(const Rendered& rendered, double i, double j, bool mirrorX = false) {
        const auto geometry = phantomGeometry(Eigen::Matrix3d::Identity());
        double right = (i - (kNx - 1) / 2.0) * geometry.spacing.x();
        if (mirrorX) right = -right;
        const double down = (j - (kNy - 1) / 2.0) * geometry.spacing.y();
        return {int(std::lround(rendered.image.width() / 2.0 + right * rendered.pixelsPerMm - 0.5)),
                int(std::lround(rendered.image.height() / 2.0 + down * rendered.pixelsPerMm - 0.5))};
    }

private Q_SLOTS:
    void init() {
        view_ = std::make_unique<render::SliceView>();
        view_->resize(480, 360);
        view_->show();
        QVERIFY(QTest::qWaitForWindowExposed(view_.get()));
    }

    void cleanup() { view_.reset(); }

    void greyValuesFollowTheWindow() {
        showVolume(phantom(Eigen::Matrix3d::Identity()));
        Rendered rendered = render();
        QCOMPARE(rendered.image.size(), view_->deviceSize());
        const auto at = [&](std::size_t i, std::size_t j) {
            return rendered.image.pixel(expectedPixel(rendered, double(i), double(j)));
        };
        QVERIFY(isGrey(at(2, 2)));
        QVERIFY2(std::abs(grey(at(2, 2)) - 128) <= 2, qPrintable(QString::number(grey(at(2, 2)))));  // HU at level
        QVERIFY2(grey(at(13, 2)) <= 1, qPrintable(QString::number(grey(at(13, 2)))));                // below window
        QVERIFY2(std::abs(grey(at(2, 9)) - 191) <= 2, qPrintable(QString::number(grey(at(2, 9)))));  // 3/4 window
        QVERIFY2(grey(at(13, 9)) >= 254, qPrintable(QString::number(grey(at(13, 9)))));              // above window

        // A wide window: -1000 HU black, +1000 white, 40 HU a little above mid grey.
        view_->setWindowLevel({2000, 0});
        rendered = render();
        QVERIFY(grey(at(13, 2)) <= 1);
        QVERIFY(grey(at(13, 9)) >= 254);
        const int expected = int(std::lround(255 * (40.0 + 1000) / 2000));
        QVERIFY2(std::abs(grey(at(2, 2)) - expected) <= 2, qPrintable(QString::number(grey(at(2, 2)))));

        // Another slice shows another picture (all air).
        view_->setSlice(0);
        rendered = render();
        QVERIFY(grey(at(2, 9)) <= 1);
    }

    void theImageKeepsThePhysicalAspect() {
        showVolume(phantom(Eigen::Matrix3d::Identity()));
        const Rendered rendered = render();
        // The image spans 16 x 2 mm across and 12 x 3 mm down: measure its edges.
        const QColor background = rendered.image.pixelColor(2, 2);
        const auto spanOf = [&](bool horizontal) {
            int first = -1, last = -1;
            const int length = horizontal ? rendered.image.width() : rendered.image.height();
            for (int position = 0; position < length; ++position) {
                // Along voxel row j = 9 and column i = 0, which hold no air (air is black,
                // the background is not).
                const QPoint pixel = horizontal ? QPoint(position, expectedPixel(rendered, 0, 9).y())
                                                : QPoint(expectedPixel(rendered, 0, 0).x(), position);
                if (rendered.image.pixelColor(pixel) != background) {
                    if (first < 0) first = position;
                    last = position;
                }
            }
            return last - first + 1;
        };
        const double widthMm = spanOf(true) / rendered.pixelsPerMm;
        const double heightMm = spanOf(false) / rendered.pixelsPerMm;
        QVERIFY2(std::abs(widthMm - 32.0) < 1.0, qPrintable(QString::number(widthMm)));
        QVERIFY2(std::abs(heightMm - 36.0) < 1.0, qPrintable(QString::number(heightMm)));
    }

    void overlayColoursExactlyTheMaskedVoxels() {
        auto volume = phantom(Eigen::Matrix3d::Identity());
        showVolume(volume);
        auto mask = std::make_shared<core::LabelMap>(volume->geometry(), 0);
        const auto masked = [](std::size_t i, std::size_t j) { return i >= 3 && i <= 10 && j >= 2 && j <= 7; };
        for (std::size_t j = 0; j < kNy; ++j) {
            for (std::size_t i = 0; i < kNx; ++i) mask->at(i, j, kShownSlice) = masked(i, j) ? 1 : 0;
        }
        for (std::size_t i = 0; i < kNx; ++i) mask->at(i, 0, kShownSlice + 1) = 1;  // another slice only
        view_->setOverlay(render::OverlaySlot::A, mask);
        const Rendered rendered = render();
        for (std::size_t j = 0; j < kNy; ++j) {
            for (std::size_t i = 0; i < kNx; ++i) {
                const QRgb pixel = rendered.image.pixel(expectedPixel(rendered, double(i), double(j)));
                const QString where = QString("voxel %1,%2 rgb %3 %4 %5").arg(i).arg(j).arg(qRed(pixel)).arg(qGreen(pixel)).arg(qBlue(pixel));
                if (masked(i, j)) {
                    // 40% green over the grey: green well above red and blue, which stay equal.
                    const double underlying = 255 * render::WindowLevel{400, 40}.greyFraction(quadrantHu(i, j));
                    QVERIFY2(std::abs(qGreen(pixel) - (0.6 * underlying + 0.4 * 255)) <= 3, qPrintable(where));
                    QVERIFY2(std::abs(qRed(pixel) - 0.6 * underlying) <= 3, qPrintable(where));
                    QVERIFY2(std::abs(qRed(pixel) - qBlue(pixel)) <= 2, qPrintable(where));
                } else {
                    QVERIFY2(isGrey(pixel), qPrintable(where));
                }
            }
        }

        // Hidden overlays leave the CT untouched.
        view_->scene().setOverlayVisible(render::OverlaySlot::A, false);
        view_->update();
        const Rendered hidden = render();
        QVERIFY(isGrey(hidden.image.pixel(expectedPixel(hidden, 5, 4))));
    }

    void twoOverlaysKeepTheirOwnColoursWhereTheyDisagree() {
        auto volume = phantom(Eigen::Matrix3d::Identity());
        showVolume(volume);
        auto maskA = std::make_shared<core::LabelMap>(volume->geometry(), 0);
        auto maskB = std::make_shared<core::LabelMap>(volume->geometry(), 0);
        for (std::size_t i = 2; i <= 9; ++i) maskA->at(i, 3, kShownSlice) = 1;
        for (std::size_t i = 6; i <= 13; ++i) maskB->at(i, 3, kShownSlice) = 1;
        view_->setOverlay(render::OverlaySlot::A, maskA);
        view_->setOverlay(render::OverlaySlot::B, maskB);
        const Rendered rendered = render();
        const auto at = [&](double i) { return rendered.image.pixel(expectedPixel(rendered, i, 3)); };
        const QRgb onlyA = at(3), onlyB = at(12), both = at(7);
        QVERIFY(qGreen(onlyA) > qRed(onlyA) + 50 && qGreen(onlyA) > qBlue(onlyA) + 50);   // green
        QVERIFY(qRed(onlyB) > qGreen(onlyB) + 50 && qBlue(onlyB) > qGreen(onlyB) + 50);   // magenta
        QVERIFY(std::abs(qRed(both) - qGreen(both)) < 50 && qBlue(both) > 50);          // both mix
        QVERIFY(!isGrey(both));
        QVERIFY(isGrey(at(0)) && isGrey(at(15)));
    }

    void flippingTheXAxisMirrorsTheImage() {
        showVolume(phantom(Eigen::Matrix3d::Identity()));
        const Rendered lps = render();
        // Patient's right (i = 0) on the screen's left: the level quadrant is on the left.
        QVERIFY(std::abs(grey(lps.image.pixel(expectedPixel(lps, 2, 2))) - 128) <= 2);
        QVERIFY(grey(lps.image.pixel(lps.image.width() - 1 - expectedPixel(lps, 2, 2).x(), expectedPixel(lps, 2, 2).y())) <= 1);

        // Same voxels, x axis of the direction reversed: increasing i now runs to the
        // patient's right, so the picture must be the mirror image.
        showVolume(phantom(Eigen::Vector3d(-1, 1, 1).asDiagonal()));
        const Rendered flipped = render();
        for (std::size_t j = 0; j < kNy; ++j) {
            for (std::size_t i = 0; i < kNx; ++i) {
                const QRgb original = lps.image.pixel(expectedPixel(lps, double(i), double(j)));
                const QRgb mirrored = flipped.image.pixel(expectedPixel(flipped, double(i), double(j), true));
                QVERIFY2(std::abs(grey(original) - grey(mirrored)) <= 2,
                         qPrintable(QString("voxel %1,%2: %3 vs %4").arg(i).arg(j).arg(grey(original)).arg(grey(mirrored))));
            }
        }
        QVERIFY(grey(flipped.image.pixel(expectedPixel(flipped, 2, 2))) <= 1);  // air is now on the left
    }

    void flippingTheYAxisPutsAnteriorUp() {
        // y reversed: increasing j runs anterior, so row j = 0 (level / air) is at the bottom.
        showVolume(phantom(Eigen::Vector3d(1, -1, 1).asDiagonal()));
        const Rendered rendered = render();
        const QPoint bottomLeft = expectedPixel(rendered, 2, kNy - 1 - 2);
        QVERIFY2(std::abs(grey(rendered.image.pixel(bottomLeft)) - 128) <= 2,
                 qPrintable(QString::number(grey(rendered.image.pixel(bottomLeft)))));
        const QPoint topRight = expectedPixel(rendered, 13, 2);
        QVERIFY(grey(rendered.image.pixel(topRight)) >= 254);  // bone (j >= 6) is now at the top
    }

    void probeReportsTheVoxelUnderThePointer() {
        showVolume(phantom(Eigen::Vector3d(-1, -1, 1).asDiagonal()));
        const Rendered rendered = render();
        // RAS-stored: voxel (i, j) is shown where an LPS grid shows (15 - i, 11 - j).
        const QPoint pixel = expectedPixel(rendered, double(kNx - 1 - 12), double(kNy - 1 - 9));
        const auto probe = view_->probeAt(QPointF(pixel) + QPointF(0.5, 0.5));
        QVERIFY(probe.inside);
        QCOMPARE(probe.index[0], 12L);
        QCOMPARE(probe.index[1], 9L);
        QCOMPARE(probe.index[2], long(kShownSlice));
        QCOMPARE(probe.hu, int(kBoneHu));
        const Eigen::Vector3d centre = view_->scene().volume()->geometry().indexToPhysical(Eigen::Vector3d(12, 9, kShownSlice));
        QVERIFY(std::abs(probe.physical[0] - centre.x()) < 1.0);
        QVERIFY(std::abs(probe.physical[1] - centre.y()) < 1.5);
        QVERIFY(std::abs(probe.physical[2] - centre.z()) < 1e-6);
        QVERIFY(!view_->probeAt(QPointF(1, 1)).inside);
    }
};

int main(int argc, char** argv) {
    render::VtkOpenGLWidget::installDefaultSurfaceFormat();
    QApplication application(argc, argv);
    TestSliceRendering test;
    return QTest::qExec(&test, argc, argv);
}
#include "test_slice_rendering.moc"
