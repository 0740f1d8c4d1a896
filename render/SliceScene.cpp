#include "render/SliceScene.h"

#include "core/ImageIO.h"
#include "render/VtkImage.h"

#include <vtkCamera.h>
#include <vtkDataArray.h>
#include <vtkImageData.h>
#include <vtkImageProperty.h>
#include <vtkImageSlice.h>
#include <vtkImageSliceMapper.h>
#include <vtkImageStack.h>
#include <vtkLookupTable.h>
#include <vtkPointData.h>
#include <vtkRenderer.h>

#include <algorithm>
#include <stdexcept>

namespace liverseg::render {

OverlayStyle defaultOverlayStyle(OverlaySlot slot) {
    OverlayStyle style;
    style.colour = slot == OverlaySlot::A ? std::array<double, 3>{0.0, 1.0, 0.0} : std::array<double, 3>{1.0, 0.0, 1.0};
    style.opacity = 0.4;
    return style;
}

SliceScene::SliceScene() {
    renderer_->SetBackground(0.08, 0.08, 0.1);
    renderer_->GetActiveCamera()->ParallelProjectionOn();

    ct_.actor->SetMapper(ct_.mapper);
    ct_.actor->GetProperty()->SetInterpolationTypeToLinear();
    ct_.actor->GetProperty()->SetLayerNumber(0);
    ct_.actor->GetProperty()->SetColorWindow(windowLevel_.window);
    ct_.actor->GetProperty()->SetColorLevel(windowLevel_.level);
    // Border: voxels at the edge are drawn whole, so the image covers exactly its voxels.
    ct_.mapper->BorderOn();

    for (int index = 0; index < kOverlaySlotCount; ++index) {
        Overlay& overlay = overlays_[std::size_t(index)];
        overlay.style = defaultOverlayStyle(OverlaySlot(index));
        overlay.layer.mapper->BorderOn();
        overlay.layer.actor->SetMapper(overlay.layer.mapper);
        vtkImageProperty* property = overlay.layer.actor->GetProperty();
        property->SetInterpolationTypeToNearest();
        property->SetLayerNumber(1 + index);
        property->SetLookupTable(overlay.colours);
        property->UseLookupTableScalarRangeOn();
        overlay.colours->SetNumberOfTableValues(256);
        overlay.colours->SetTableRange(0, 255);
        applyOverlayColours(overlay);
    }
}

SliceScene::~SliceScene() = default;

vtkRenderer* SliceScene::renderer() const { return renderer_.GetPointer(); }

void SliceScene::setVolume(std::shared_ptr<const core::CtVolume> volume) {
    for (int index = 0; index < kOverlaySlotCount; ++index) setOverlay(OverlaySlot(index), nullptr);
    // Detach VTK from the shared voxels before they may go away.
    renderer_->RemoveViewProp(stack_);
    stack_->RemoveImage(ct_.actor);
    ct_.mapper->RemoveAllInputs();
    ct_.image = nullptr;
    volume_ = std::move(volume);
    if (volume_ && volume_->empty()) volume_.reset();
    if (!volume_) return;
    layout_ = axialLayout(volume_->geometry());
    ct_.image = shareAsVtkImage(*volume_);
    ct_.mapper->SetInputData(ct_.image);
    stack_->AddImage(ct_.actor);
    renderer_->AddViewProp(stack_);
    slice_ = sliceCount() / 2;
    applySliceToLayers();
    placeCamera();
}

int SliceScene::sliceCount() const {
    return volume_ ? int(volume_->size()[std::size_t(layout_.sliceAxis)]) : 0;
}

void SliceScene::setSlice(int slice) {
    if (!volume_) return;
    slice_ = std::clamp(slice, 0, sliceCount() - 1);
    applySliceToLayers();
    renderer_->ResetCameraClippingRange();
}

void SliceScene::setWindowLevel(WindowLevel windowLevel) {
    windowLevel.window = std::max(kMinimumWindow, windowLevel.window);
    windowLevel_ = windowLevel;
    ct_.actor->GetProperty()->SetColorWindow(windowLevel.window);
    ct_.actor->GetProperty()->SetColorLevel(windowLevel.level);
}

void SliceScene::setSmoothCt(bool smooth) {
    if (smooth) {
        ct_.actor->GetProperty()->SetInterpolationTypeToLinear();
    } else {
        ct_.actor->GetProperty()->SetInterpolationTypeToNearest();
    }
}

void SliceScene::setOverlay(OverlaySlot slot, std::shared_ptr<const core::LabelMap> labels) {
    Overlay& overlay = overlaySlot(slot);
    if (labels) {
        if (!volume_) throw std::logic_error("SliceScene::setOverlay: no volume to lay the overlay on");
        core::requireSameGrid(labels->geometry(), volume_->geometry(), "the overlay");
    }
    stack_->RemoveImage(overlay.layer.actor);
    overlay.layer.mapper->RemoveAllInputs();
    overlay.layer.image = nullptr;
    overlay.labels = std::move(labels);
    if (!overlay.labels) return;
    overlay.layer.image = shareAsVtkImage(*overlay.labels);
    overlay.layer.mapper->SetInputData(overlay.layer.image);
    overlay.layer.actor->SetVisibility(overlay.visible);
    stack_->AddImage(overlay.layer.actor);
    applySliceToLayers();
}

const core::LabelMap* SliceScene::overlay(OverlaySlot slot) const { return overlaySlot(slot).labels.get(); }

void SliceScene::setOverlayStyle(OverlaySlot slot, const OverlayStyle& style) {
    Overlay& overlay = overlaySlot(slot);
    overlay.style = style;
    applyOverlayColours(overlay);
}

OverlayStyle SliceScene::overlayStyle(OverlaySlot slot) const { return overlaySlot(slot).style; }

void SliceScene::setOverlayVisible(OverlaySlot slot, bool visible) {
    Overlay& overlay = overlaySlot(slot);
    overlay.visible = visible;
    overlay.layer.actor->SetVisibility(visible);
}

bool SliceScene::overlayVisible(OverlaySlot slot) const { return overlaySlot(slot).visible; }

void SliceScene::overlayVoxelsChanged(OverlaySlot slot) {
    Overlay& overlay = overlaySlot(slot);
    if (overlay.layer.image) overlay.layer.image->GetPointData()->GetScalars()->Modified();
}

void SliceScene::applySliceToLayers() {
    const auto show = [this](Layer& layer) {
        if (!layer.image) return;
        layer.mapper->SetOrientation(layout_.sliceAxis);
        layer.mapper->SetSliceNumber(slice_);
    };
    show(ct_);
    for (auto& overlay : overlays_) show(overlay.layer);
}

void SliceScene::applyOverlayColours(Overlay& overlay) {
    const auto& [red, green, blue] = overlay.style.colour;
    overlay.colours->SetTableValue(0, 0, 0, 0, 0);
    for (int label = 1; label < 256; ++label) {
        overlay.colours->SetTableValue(label, red, green, blue, overlay.style.opacity);
    }
    overlay.colours->Modified();
}

void SliceScene::placeCamera() {
    if (!volume_) return;
    const core::Geometry& geometry = volume_->geometry();
    const Eigen::Vector3d focus = sliceCentre(geometry, layout_, sliceCount() / 2);
    const double diagonal =
        (geometry.spacing.array() * Eigen::Array3d(double(geometry.size[0]), double(geometry.size[1]),
                                                   double(geometry.size[2])))
            .matrix()
            .norm();
    const Eigen::Vector3d eye = focus - layout_.viewDirection * (diagonal + 100.0);
    vtkCamera* camera = renderer_->GetActiveCamera();
    camera->SetFocalPoint(focus.data());
    camera->SetPosition(eye.data());
    camera->SetViewUp(layout_.screenUp.data());
    renderer_->ResetCameraClippingRange();
}

void SliceScene::fitToViewport(int widthPixels, int heightPixels) {
    if (!volume_ || widthPixels <= 0 || heightPixels <= 0) return;
    placeCamera();
    const core::Geometry& geometry = volume_->geometry();
    const auto extentMm = [&geometry](int axis) {
        return double(geometry.size[std::size_t(axis)]) * geometry.spacing[axis];
    };
    const double aspect = double(widthPixels) / double(heightPixels);
    const double halfHeight = std::max(extentMm(layout_.upAxis) / 2, extentMm(layout_.rightAxis) / 2 / aspect);
    renderer_->GetActiveCamera()->SetParallelScale(halfHeight * 1.02);
}

VoxelProbe SliceScene::probeAtDisplay(double x, double y) const {
    if (!volume_) return {};
    vtkCamera* camera = renderer_->GetActiveCamera();
    double focus[4];
    camera->GetFocalPoint(focus);
    focus[3] = 1;
    renderer_->SetWorldPoint(focus);
    renderer_->WorldToDisplay();
    double focusDisplay[3];
    renderer_->GetDisplayPoint(focusDisplay);

    renderer_->SetDisplayPoint(x, y, focusDisplay[2]);
    renderer_->DisplayToWorld();
    double world[4];
    renderer_->GetWorldPoint(world);
    if (world[3] == 0) return {};
    const Eigen::Vector3d point(world[0] / world[3], world[1] / world[3], world[2] / world[3]);
    return probeSlice(*volume_, layout_, slice_, point);
}

}  // namespace liverseg::render
