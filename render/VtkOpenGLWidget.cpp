#include "render/VtkOpenGLWidget.h"

#include <QOpenGLContext>

#include <vtkCommand.h>
#include <vtkGenericOpenGLRenderWindow.h>
#include <vtkOpenGLState.h>

namespace liverseg::render {

VtkOpenGLWidget::VtkOpenGLWidget(QWidget* parent) : QOpenGLWidget(parent) {
    setFormat(defaultSurfaceFormat());
    // VTK renders into its own framebuffer and we blit it; it must not touch the window
    // system's buffers or swap: the context and the surface belong to Qt.
    renderWindow_->SetOwnContext(false);
    renderWindow_->SetFrameBlitModeToNoBlit();
    renderWindow_->SetReadyForRendering(false);
    renderWindow_->SetMultiSamples(0);
    renderWindow_->SetForceMaximumHardwareLineWidth(1);

    observerTags_.push_back(renderWindow_->AddObserver(vtkCommand::WindowMakeCurrentEvent, this,
                                                       &VtkOpenGLWidget::makeContextCurrent));
    observerTags_.push_back(renderWindow_->AddObserver(vtkCommand::WindowIsCurrentEvent, this,
                                                       &VtkOpenGLWidget::reportContextCurrent));
    observerTags_.push_back(
        renderWindow_->AddObserver(vtkCommand::WindowSupportsOpenGLEvent, this, &VtkOpenGLWidget::reportTrue));
    observerTags_.push_back(
        renderWindow_->AddObserver(vtkCommand::WindowIsDirectEvent, this, &VtkOpenGLWidget::reportTrue));
}

VtkOpenGLWidget::~VtkOpenGLWidget() {
    releaseGraphics();
    for (const unsigned long tag : observerTags_) renderWindow_->RemoveObserver(tag);
}

vtkGenericOpenGLRenderWindow* VtkOpenGLWidget::renderWindow() const { return renderWindow_.GetPointer(); }

QSurfaceFormat VtkOpenGLWidget::defaultSurfaceFormat() {
    QSurfaceFormat format;
    format.setRenderableType(QSurfaceFormat::OpenGL);
    format.setVersion(3, 2);
    format.setProfile(QSurfaceFormat::CoreProfile);
    format.setRedBufferSize(8);
    format.setGreenBufferSize(8);
    format.setBlueBufferSize(8);
    format.setAlphaBufferSize(8);
    format.setDepthBufferSize(24);
    format.setStencilBufferSize(0);
    format.setSamples(0);
    format.setSwapInterval(0);
    return format;
}

void VtkOpenGLWidget::installDefaultSurfaceFormat() { QSurfaceFormat::setDefaultFormat(defaultSurfaceFormat()); }

QSize VtkOpenGLWidget::deviceSize() const { return size() * devicePixelRatioF(); }

void VtkOpenGLWidget::makeContextCurrent(vtkObject*, unsigned long, void*) {
    // Not QOpenGLWidget::makeCurrent(): that also binds Qt's framebuffer behind the GL state
    // VTK has cached, and VTK then attaches its buffers to Qt's framebuffer.
    QOpenGLContext* widgetContext = context();
    if (widgetContext && QOpenGLContext::currentContext() != widgetContext) {
        widgetContext->makeCurrent(widgetContext->surface());
    }
}

void VtkOpenGLWidget::reportContextCurrent(vtkObject*, unsigned long, void* callData) {
    *static_cast<bool*>(callData) = context() && QOpenGLContext::currentContext() == context();
}

void VtkOpenGLWidget::reportTrue(vtkObject*, unsigned long, void* callData) { *static_cast<int*>(callData) = 1; }

void VtkOpenGLWidget::initializeGL() {
    // Qt may recreate the context (e.g. on reparenting); VTK's resources die with the old one.
    connect(context(), &QOpenGLContext::aboutToBeDestroyed, this, &VtkOpenGLWidget::releaseGraphics,
            Qt::UniqueConnection);
    const QSize pixels = deviceSize();
    renderWindow_->SetSize(pixels.width(), pixels.height());
    renderWindow_->SetReadyForRendering(true);
    vtkInitialized_ = renderWindow_->InitializeFromCurrentContext();
    renderWindow_->SetReadyForRendering(false);
    renderWindow_->GetState()->Reset();
    if (!vtkInitialized_) qWarning("liverseg: VTK could not use the widget's OpenGL context");
}

void VtkOpenGLWidget::resizeGL(int, int) {
    const QSize pixels = deviceSize();
    renderWindow_->SetSize(pixels.width(), pixels.height());
}

void VtkOpenGLWidget::paintGL() {
    if (!vtkInitialized_) return;
    vtkOpenGLState* state = renderWindow_->GetState();
    // Qt changed the GL state since VTK last looked: re-read it, and restore Qt's afterwards.
    state->Reset();
    state->Push();
    state->vtkglDepthFunc(GL_LEQUAL);

    renderWindow_->SetReadyForRendering(true);
    renderWindow_->Render();
    renderWindow_->SetReadyForRendering(false);

    const QSize pixels = deviceSize();
    state->vtkglBindFramebuffer(GL_DRAW_FRAMEBUFFER, defaultFramebufferObject());
    renderWindow_->BlitDisplayFramebuffer(0, 0, 0, pixels.width(), pixels.height(), 0, 0, pixels.width(),
                                          pixels.height(), GL_COLOR_BUFFER_BIT, GL_NEAREST);
    // The widget is composited with its alpha: make it opaque whatever VTK left there.
    state->vtkglColorMask(GL_FALSE, GL_FALSE, GL_FALSE, GL_TRUE);
    state->vtkglClearColor(0, 0, 0, 1);
    state->vtkglClear(GL_COLOR_BUFFER_BIT);
    state->vtkglColorMask(GL_TRUE, GL_TRUE, GL_TRUE, GL_TRUE);
    state->Pop();
}

void VtkOpenGLWidget::releaseGraphics() {
    if (!vtkInitialized_) return;
    vtkInitialized_ = false;
    QOpenGLContext* widgetContext = context();
    if (!widgetContext) return;
    makeCurrent();
    renderWindow_->GetState()->Reset();
    renderWindow_->Finalize();
    doneCurrent();
}

}  // namespace liverseg::render
