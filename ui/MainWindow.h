#pragma once
#include "render/AxialLayout.h"
#include "render/WindowLevel.h"
#include "ui/ViewerDocument.h"

#include <QMainWindow>
#include <QString>

#include <functional>

class QAction;
class QActionGroup;
class QLabel;
class QSlider;
class QStackedWidget;

namespace liverseg::render {
class SliceView;
}

namespace liverseg::ui {

// The viewer's main window: menus, toolbar, the axial slice view with its slider, and a
// status bar (slice, window/level, HU and position under the pointer, orientation).
// Files load in the background; a failed load reports its one-line error and leaves the
// shown document as it was.
class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Background loads, one at a time (the open actions are disabled meanwhile);
    // loadFinished reports the outcome.
    void openCt(const QString& path, const InitialView& view = {});
    void openCtWithMask(const QString& ctPath, const QString& maskPath, const InitialView& view = {});
    void openMask(const QString& path);

    // Shows an already loaded document at once.
    void showDocument(ViewerDocument document, const InitialView& view = {});

    const ViewerDocument& document() const { return document_; }
    bool isLoading() const { return loading_; }
    QString lastError() const { return lastError_; }
    render::SliceView* sliceView() const { return sliceView_; }

Q_SIGNALS:
    void loadFinished(bool succeeded);

private:
    void buildActions();
    void buildCentralWidget();
    void buildStatusBar();
    void chooseCtFile();
    void chooseDicomFolder();
    void chooseMask();
    void load(const QString& what, std::function<ViewerDocument()> work, const InitialView& view);
    void setLoading(bool loading);
    void showError(const QString& message);
    void showSliceStatus();
    void showWindowLevelStatus(render::WindowLevel windowLevel);
    void showProbe(const render::VoxelProbe& probe);

    ViewerDocument document_;
    bool loading_ = false;
    QString lastError_;

    QStackedWidget* pages_ = nullptr;
    QLabel* emptyHint_ = nullptr;
    render::SliceView* sliceView_ = nullptr;
    QSlider* sliceSlider_ = nullptr;
    QLabel* sliceLabel_ = nullptr;
    QLabel* windowLabel_ = nullptr;
    QLabel* probeLabel_ = nullptr;
    QLabel* orientationLabel_ = nullptr;
    QAction* openCtAction_ = nullptr;
    QAction* openDicomAction_ = nullptr;
    QAction* openMaskAction_ = nullptr;
    QActionGroup* presetActions_ = nullptr;
};

}  // namespace liverseg::ui
