#pragma once
#include "core/Image.h"
#include "render/AxialLayout.h"
#include "render/WindowLevel.h"

#include <vtkNew.h>
#include <vtkSmartPointer.h>

#include <array>
#include <memory>
#include <optional>

class vtkCamera;
class vtkImageData;
class vtkImageSlice;
class vtkImageSliceMapper;
class vtkImageStack;
class vtkLookupTable;
class vtkRenderer;

namespace liverseg::render {

// Label maps drawn over the CT. Two slots so that two segmentations (e.g. UNet and UNet3+,
// or a prediction and a reference) can be compared; where only one of them covers a voxel
// it shows in that slot's pure colour, where both do the colours mix.
enum class OverlaySlot { A = 0, B = 1 };
constexpr int kOverlaySlotCount = 2;

struct OverlayStyle {
    std::array<double, 3> colour{0, 1, 0};  // RGB in [0, 1]
    double opacity = 0.4;                   // of a labelled voxel; background is transparent
};
// A: green, B: magenta.
OverlayStyle defaultOverlayStyle(OverlaySlot slot);

// The VTK scene of one axial slice view: the CT slice with a Hounsfield window and up to
// two translucent label overlays, with a camera in radiological convention. Renders into
// whatever render window its renderer is added to; knows nothing about Qt.
class SliceScene {
public:
    SliceScene();
    ~SliceScene();
    SliceScene(const SliceScene&) = delete;
    SliceScene& operator=(const SliceScene&) = delete;

    vtkRenderer* renderer() const;

    // Shows `volume` (shared, not copied) at its middle slice; clears the overlays, which
    // belonged to the previous grid. nullptr empties the scene.
    void setVolume(std::shared_ptr<const core::CtVolume> volume);
    const core::CtVolume* volume() const { return volume_.get(); }
    bool hasVolume() const { return volume_ != nullptr; }
    const AxialLayout& layout() const { return layout_; }

    int sliceCount() const;
    int slice() const { return slice_; }
    // Clamped to [0, sliceCount() - 1].
    void setSlice(int slice);

    WindowLevel windowLevel() const { return windowLevel_; }
    void setWindowLevel(WindowLevel windowLevel);
    // Linear interpolation of the CT between voxel centres (overlays stay nearest-voxel).
    void setSmoothCt(bool smooth);

    // `labels` must lie on the volume's grid (throws core::InputError otherwise); shared,
    // not copied. Voxels != 0 are drawn. nullptr removes the overlay.
    void setOverlay(OverlaySlot slot, std::shared_ptr<const core::LabelMap> labels);
    const core::LabelMap* overlay(OverlaySlot slot) const;
    void setOverlayStyle(OverlaySlot slot, const OverlayStyle& style);
    OverlayStyle overlayStyle(OverlaySlot slot) const;
    void setOverlayVisible(OverlaySlot slot, bool visible);
    bool overlayVisible(OverlaySlot slot) const;
    // Call after changing the voxels of an overlay's label map in place (painting).
    void overlayVoxelsChanged(OverlaySlot slot);

    // Centres the slice and fits the whole in-plane extent into a viewport of this size,
    // keeping the physical aspect ratio.
    void fitToViewport(int widthPixels, int heightPixels);

    // What lies under VTK display coordinates (pixels, origin bottom left) of the renderer's
    // viewport; needs the renderer to be in a render window of the current size.
    VoxelProbe probeAtDisplay(double x, double y) const;

private:
    struct Layer {
        vtkNew<vtkImageSliceMapper> mapper;
        vtkNew<vtkImageSlice> actor;
        vtkSmartPointer<vtkImageData> image;
    };
    struct Overlay {
        Layer layer;
        vtkNew<vtkLookupTable> colours;
        std::shared_ptr<const core::LabelMap> labels;
        OverlayStyle style;
        bool visible = true;
    };

    Overlay& overlaySlot(OverlaySlot slot) { return overlays_[std::size_t(slot)]; }
    const Overlay& overlaySlot(OverlaySlot slot) const { return overlays_[std::size_t(slot)]; }
    void applySliceToLayers();
    void applyOverlayColours(Overlay& overlay);
    void placeCamera();

    vtkNew<vtkRenderer> renderer_;
    vtkNew<vtkImageStack> stack_;
    Layer ct_;
    std::array<Overlay, kOverlaySlotCount> overlays_;
    std::shared_ptr<const core::CtVolume> volume_;
    AxialLayout layout_;
    int slice_ = 0;
    WindowLevel windowLevel_;
};

}  // namespace liverseg::render
