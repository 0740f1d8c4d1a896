#pragma once
#include "render/SliceScene.h"
#include "render/VtkOpenGLWidget.h"

#include <QPoint>

#include <memory>

namespace liverseg::render {

// An axial slice view: a SliceScene in a VTK host widget. Mouse wheel steps through slices,
// right-drag adjusts the window/level, the pointer reports the voxel under it. The left
// button is left free for tools (painting) that later build on this view.
class SliceView : public VtkOpenGLWidget {
    Q_OBJECT
public:
    explicit SliceView(QWidget* parent = nullptr);
    ~SliceView() override;

    // Read access and settings that need no signal; prefer the setters below to change
    // what the signals report.
    SliceScene& scene() { return *scene_; }
    const SliceScene& scene() const { return *scene_; }

    void setVolume(std::shared_ptr<const core::CtVolume> volume);
    void setOverlay(OverlaySlot slot, std::shared_ptr<const core::LabelMap> labels);
    int slice() const { return scene_->slice(); }
    int sliceCount() const { return scene_->sliceCount(); }
    void setSlice(int slice);
    void stepSlice(int steps) { setSlice(slice() + steps); }
    WindowLevel windowLevel() const { return scene_->windowLevel(); }
    void setWindowLevel(WindowLevel windowLevel);

    // What lies under a widget position (logical pixels, origin top left).
    VoxelProbe probeAt(const QPointF& widgetPosition) const;

Q_SIGNALS:
    void sliceChanged(int slice);
    void windowLevelChanged(liverseg::render::WindowLevel windowLevel);
    // The voxel under the pointer; `inside` is false off the image or when the pointer left.
    void probed(const liverseg::render::VoxelProbe& probe);

protected:
    void resizeGL(int width, int height) override;
    void wheelEvent(QWheelEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void leaveEvent(QEvent* event) override;

private:
    void fitScene();

    std::unique_ptr<SliceScene> scene_;
    bool adjustingWindow_ = false;
    QPointF dragStart_;
    WindowLevel dragStartWindowLevel_;
    int wheelRemainder_ = 0;
};

}  // namespace liverseg::render
