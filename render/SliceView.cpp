#include "render/SliceView.h"

#include <QMouseEvent>
#include <QWheelEvent>

#include <vtkGenericOpenGLRenderWindow.h>
#include <vtkRenderer.h>

namespace liverseg::render {

SliceView::SliceView(QWidget* parent) : VtkOpenGLWidget(parent), scene_(std::make_unique<SliceScene>()) {
    renderWindow()->AddRenderer(scene_->renderer());
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setMinimumSize(64, 64);
}

SliceView::~SliceView() = default;

void SliceView::setVolume(std::shared_ptr<const core::CtVolume> volume) {
    scene_->setVolume(std::move(volume));
    fitScene();
    update();
    Q_EMIT sliceChanged(scene_->slice());
}

void SliceView::setOverlay(OverlaySlot slot, std::shared_ptr<const core::LabelMap> labels) {
    scene_->setOverlay(slot, std::move(labels));
    update();
}

void SliceView::setSlice(int slice) {
    const int before = scene_->slice();
    scene_->setSlice(slice);
    if (scene_->slice() == before) return;
    update();
    Q_EMIT sliceChanged(scene_->slice());
}

void SliceView::setWindowLevel(WindowLevel windowLevel) {
    const WindowLevel before = scene_->windowLevel();
    scene_->setWindowLevel(windowLevel);
    if (scene_->windowLevel() == before) return;
    update();
    Q_EMIT windowLevelChanged(scene_->windowLevel());
}

VoxelProbe SliceView::probeAt(const QPointF& widgetPosition) const {
    const double ratio = devicePixelRatioF();
    // VTK's display coordinates count device pixels from the bottom left.
    const double x = widgetPosition.x() * ratio;
    const double y = (height() - widgetPosition.y()) * ratio;
    return scene_->probeAtDisplay(x, y);
}

void SliceView::resizeGL(int width, int height) {
    VtkOpenGLWidget::resizeGL(width, height);
    fitScene();
}

void SliceView::fitScene() {
    const QSize pixels = deviceSize();
    scene_->fitToViewport(pixels.width(), pixels.height());
}

void SliceView::wheelEvent(QWheelEvent* event) {
    // One notch is 120 units; touchpads send smaller deltas that add up.
    wheelRemainder_ += event->angleDelta().y();
    const int steps = wheelRemainder_ / 120;
    wheelRemainder_ -= steps * 120;
    if (steps != 0) stepSlice(steps);
    event->accept();
}

void SliceView::mousePressEvent(QMouseEvent* event) {
    if (event->button() == Qt::RightButton) {
        adjustingWindow_ = true;
        dragStart_ = event->position();
        dragStartWindowLevel_ = windowLevel();
        event->accept();
        return;
    }
    VtkOpenGLWidget::mousePressEvent(event);
}

void SliceView::mouseMoveEvent(QMouseEvent* event) {
    if (adjustingWindow_) {
        const QPointF moved = event->position() - dragStart_;
        setWindowLevel(dragStartWindowLevel_.draggedBy(moved.x(), moved.y()));
    }
    if (scene_->hasVolume()) Q_EMIT probed(probeAt(event->position()));
    VtkOpenGLWidget::mouseMoveEvent(event);
}

void SliceView::mouseReleaseEvent(QMouseEvent* event) {
    if (event->button() == Qt::RightButton) adjustingWindow_ = false;
    VtkOpenGLWidget::mouseReleaseEvent(event);
}

void SliceView::leaveEvent(QEvent* event) {
    Q_EMIT probed(VoxelProbe{});
    VtkOpenGLWidget::leaveEvent(event);
}

}  // namespace liverseg::render
