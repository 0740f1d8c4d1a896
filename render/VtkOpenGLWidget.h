#pragma once
#include <QOpenGLWidget>
#include <QSurfaceFormat>

#include <vtkNew.h>

#include <vector>

class vtkGenericOpenGLRenderWindow;
class vtkObject;

namespace liverseg::render {

// Hosts a VTK render window in a Qt 6 QOpenGLWidget (Debian's VTK Qt module is built for
// Qt 5). VTK renders into its own framebuffer inside the widget's context; each paint blits
// the result into the widget's framebuffer. Input events are the subclass's to handle.
class VtkOpenGLWidget : public QOpenGLWidget {
    Q_OBJECT
public:
    explicit VtkOpenGLWidget(QWidget* parent = nullptr);
    ~VtkOpenGLWidget() override;

    vtkGenericOpenGLRenderWindow* renderWindow() const;

    // OpenGL 3.2 core, what VTK needs. Call installDefaultSurfaceFormat() before creating the
    // QApplication so that every context in the application can share with this one.
    static QSurfaceFormat defaultSurfaceFormat();
    static void installDefaultSurfaceFormat();

    // The widget size in device pixels, which is what VTK renders.
    QSize deviceSize() const;

protected:
    void initializeGL() override;
    void resizeGL(int width, int height) override;
    void paintGL() override;

private:
    void makeContextCurrent(vtkObject* caller, unsigned long event, void* callData);
    void reportContextCurrent(vtkObject* caller, unsigned long event, void* callData);
    void reportTrue(vtkObject* caller, unsigned long event, void* callData);
    void releaseGraphics();

    vtkNew<vtkGenericOpenGLRenderWindow> renderWindow_;
    std::vector<unsigned long> observerTags_;
    bool vtkInitialized_ = false;
};

}  // namespace liverseg::render
