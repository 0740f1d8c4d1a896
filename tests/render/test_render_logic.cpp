// render logic without OpenGL: window/level arithmetic, the radiological layout derived from
// the direction matrix, probing, and the zero-copy VTK image wrapping.
#include "core/Errors.h"
#include "core/Image.h"
#include "render/AxialLayout.h"
#include "render/SliceScene.h"
#include "render/VtkImage.h"
#include "render/WindowLevel.h"
#include "tests/support/TestSupport.h"

#include <Eigen/Geometry>
#include <QtTest>

#include <vtkDataArray.h>
#include <vtkImageData.h>
#include <vtkMatrix3x3.h>
#include <vtkPointData.h>

using namespace liverseg;

namespace {

core::Geometry axisAlignedGeometry(const Eigen::Matrix3d& direction) {
    core::Geometry geometry;
    geometry.size = {16, 12, 5};
    geometry.spacing = Eigen::Vector3d(2.0, 3.0, 2.5);
    geometry.origin = Eigen::Vector3d(-10, 20, -300);
    geometry.direction = direction;
    return geometry;
}

}  // namespace

class TestRenderLogic : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void windowLevelMapsHuToGrey() {
        const render::WindowLevel abdomen{400, 40};
        QCOMPARE(abdomen.greyFraction(40), 0.5);
        QCOMPARE(abdomen.greyFraction(-160), 0.0);
        QCOMPARE(abdomen.greyFraction(-1000), 0.0);
        QCOMPARE(abdomen.greyFraction(240), 1.0);
        QCOMPARE(abdomen.greyFraction(140), 0.75);
    }

    void presetsHaveTheClinicalValues() {
        QCOMPARE(render::findWindowLevelPreset("abdomen")->value, (render::WindowLevel{400, 40}));
        QCOMPARE(render::findWindowLevelPreset("liver")->value, (render::WindowLevel{150, 60}));
        QCOMPARE(render::findWindowLevelPreset("bone")->value, (render::WindowLevel{1800, 400}));
        QCOMPARE(render::findWindowLevelPreset("lung")->value, (render::WindowLevel{1500, -600}));
        QVERIFY(!render::findWindowLevelPreset("brain"));
        QCOMPARE(QString::fromStdString(render::windowLevelPresetNames()), QString("abdomen, liver, bone, lung"));
    }

    void draggingWidensTheWindowAndRaisesTheLevel() {
        const render::WindowLevel start{400, 40};
        const render::WindowLevel wider = start.draggedBy(100, 0);
        QVERIFY(wider.window > start.window);
        QCOMPARE(wider.level, start.level);
        const render::WindowLevel higher = start.draggedBy(0, -50);  // up the screen
        QVERIFY(higher.level > start.level);
        QCOMPARE(higher.window, start.window);
        QCOMPARE(start.draggedBy(-100000, 0).window, render::kMinimumWindow);
    }

    void identityDirectionIsRadiological() {
        const auto layout = render::axialLayout(axisAlignedGeometry(Eigen::Matrix3d::Identity()));
        QCOMPARE(layout.sliceAxis, 2);
        QCOMPARE(layout.rightAxis, 0);
        QCOMPARE(layout.upAxis, 1);
        // LPS: +i is the patient's left = screen right; +j posterior = screen down.
        QVERIFY(!layout.rightReversed);
        QVERIFY(layout.upReversed);
        QVERIFY(!layout.oblique);
        QVERIFY(layout.viewDirection.isApprox(Eigen::Vector3d(0, 0, 1)));  // from the feet
    }

    void rasStoredDataIsFlippedOnBothAxes() {
        const Eigen::Matrix3d ras = Eigen::Vector3d(-1, -1, 1).asDiagonal();
        const auto layout = render::axialLayout(axisAlignedGeometry(ras));
        QVERIFY(layout.rightReversed);
        QVERIFY(!layout.upReversed);
        QVERIFY(layout.screenRight.isApprox(Eigen::Vector3d(1, 0, 0)));
        QVERIFY(layout.screenUp.isApprox(Eigen::Vector3d(0, -1, 0)));
        QCOMPARE(QString::fromStdString(layout.orientationCode), QString("RAS"));
    }

    void permutedAxesFindTheAxialPlane() {
        // A grid stored sagittally: i runs posterior, j superior, k left.
        Eigen::Matrix3d direction;
        direction << 0, 0, 1,  //
            1, 0, 0,           //
            0, 1, 0;
        const auto layout = render::axialLayout(axisAlignedGeometry(direction));
        QCOMPARE(layout.sliceAxis, 1);
        QCOMPARE(layout.rightAxis, 2);
        QCOMPARE(layout.upAxis, 0);
        QVERIFY(!layout.rightReversed);
        QVERIFY(layout.upReversed);
        QVERIFY(layout.viewDirection.isApprox(Eigen::Vector3d(0, 0, 1)));
    }

    void obliqueGridUsesTheNearestAxesAndSaysSo() {
        const auto geometry = test::obliqueGeometry(8, 8, 4);
        const auto layout = render::axialLayout(geometry);
        QVERIFY(layout.oblique);
        QCOMPARE(layout.sliceAxis, 2);
        QCOMPARE(layout.rightAxis, 0);
        // The grid's own axes, so the image is shown unrotated.
        QVERIFY(layout.screenRight.isApprox(geometry.direction.col(0)));
        QVERIFY(std::abs(layout.viewDirection.dot(geometry.direction.col(2))) > 0.999);
    }

    void fortyFiveDegreesStillGivesAPermutation() {
        const Eigen::Matrix3d direction = Eigen::AngleAxisd(M_PI / 4, Eigen::Vector3d::UnitZ()).toRotationMatrix();
        const auto layout = render::axialLayout(axisAlignedGeometry(direction));
        QCOMPARE(layout.sliceAxis, 2);
        QVERIFY(layout.rightAxis != layout.upAxis);
    }

    void probeFindsTheVoxelAndItsPosition() {
        core::CtVolume volume(axisAlignedGeometry(Eigen::Vector3d(-1, -1, 1).asDiagonal()), -1000);
        volume.at(3, 4, 2) = 123;
        const auto layout = render::axialLayout(volume.geometry());
        // A point off the slice plane is projected onto it along the view direction.
        const Eigen::Vector3d voxelCentre = volume.geometry().indexToPhysical(Eigen::Vector3d(3, 4, 2));
        const auto probe = render::probeSlice(volume, layout, 2, voxelCentre + Eigen::Vector3d(0.4, -0.6, 7.0));
        QVERIFY(probe.inside);
        QCOMPARE(probe.index[0], 3L);
        QCOMPARE(probe.index[1], 4L);
        QCOMPARE(probe.index[2], 2L);
        QCOMPARE(probe.hu, 123);
        QCOMPARE(probe.physical[2], voxelCentre.z());
        QCOMPARE(probe.physical[0], voxelCentre.x() + 0.4);

        const auto outside = render::probeSlice(volume, layout, 2, voxelCentre + Eigen::Vector3d(100, 0, 0));
        QVERIFY(!outside.inside);
    }

    void vtkImageSharesVoxelsAndKeepsGeometry() {
        const auto geometry = test::obliqueGeometry(7, 5, 3);
        core::CtVolume volume(geometry, 0);
        volume.at(6, 4, 2) = 77;
        const auto image = render::shareAsVtkImage(volume);
        int dimensions[3];
        image->GetDimensions(dimensions);
        QCOMPARE(dimensions[0], 7);
        QCOMPARE(dimensions[2], 3);
        for (int axis = 0; axis < 3; ++axis) {
            QCOMPARE(image->GetSpacing()[axis], geometry.spacing[axis]);
            QCOMPARE(image->GetOrigin()[axis], geometry.origin[axis]);
            for (int column = 0; column < 3; ++column) {
                QCOMPARE(image->GetDirectionMatrix()->GetElement(axis, column), geometry.direction(axis, column));
            }
        }
        // Same buffer, not a copy.
        QCOMPARE(image->GetScalarPointer(), static_cast<void*>(const_cast<std::int16_t*>(volume.voxels().data())));
        QCOMPARE(image->GetScalarComponentAsDouble(6, 4, 2, 0), 77.0);
        // VTK's index-to-physical mapping equals ours.
        double vtkPhysical[3];
        image->TransformContinuousIndexToPhysicalPoint(6, 4, 2, vtkPhysical);
        const Eigen::Vector3d ours = geometry.indexToPhysical(Eigen::Vector3d(6, 4, 2));
        for (int axis = 0; axis < 3; ++axis) QVERIFY(std::abs(vtkPhysical[axis] - ours[axis]) < 1e-9);
    }

    void overlayOffTheCtGridIsRefused() {
        render::SliceScene scene;
        scene.setVolume(std::make_shared<core::CtVolume>(axisAlignedGeometry(Eigen::Matrix3d::Identity()), 0));
        auto shifted = axisAlignedGeometry(Eigen::Matrix3d::Identity());
        shifted.origin.x() += 1.0;
        QVERIFY_THROWS_EXCEPTION(core::InputError,
                                 scene.setOverlay(render::OverlaySlot::A, std::make_shared<core::LabelMap>(shifted, 1)));
        QVERIFY(!scene.overlay(render::OverlaySlot::A));
        scene.setOverlay(render::OverlaySlot::B,
                         std::make_shared<core::LabelMap>(axisAlignedGeometry(Eigen::Matrix3d::Identity()), 1));
        QVERIFY(scene.overlay(render::OverlaySlot::B));
        // A new volume drops the overlays of the old grid.
        scene.setVolume(std::make_shared<core::CtVolume>(shifted, 0));
        QVERIFY(!scene.overlay(render::OverlaySlot::B));
    }

    void sliceIsClampedAndStartsInTheMiddle() {
        render::SliceScene scene;
        QCOMPARE(scene.sliceCount(), 0);
        scene.setVolume(std::make_shared<core::CtVolume>(axisAlignedGeometry(Eigen::Matrix3d::Identity()), 0));
        QCOMPARE(scene.sliceCount(), 5);
        QCOMPARE(scene.slice(), 2);
        scene.setSlice(99);
        QCOMPARE(scene.slice(), 4);
        scene.setSlice(-3);
        QCOMPARE(scene.slice(), 0);
    }
};

QTEST_GUILESS_MAIN(TestRenderLogic)
#include "test_render_logic.moc"
