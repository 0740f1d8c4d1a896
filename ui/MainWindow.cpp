#include "ui/MainWindow.h"

#include "core/Image.h"
#include "render/SliceView.h"
#include "ui/BackgroundJob.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QKeySequence>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QSignalBlocker>
#include <QSlider>
#include <QStackedWidget>
#include <QStatusBar>
#include <QToolBar>

namespace liverseg::ui {

namespace {

std::filesystem::path toPath(const QString& path) { return std::filesystem::path(path.toStdString()); }

QString fileName(const std::filesystem::path& path) {
    return QString::fromStdString(path.filename().empty() ? path.parent_path().filename().string()
                                                          : path.filename().string());
}

QString formatMm(double value) { return QString::number(value, 'f', 1); }

const char* kEmptyHint =
    "No CT loaded.\n\n"
    "File > Open CT... (Ctrl+O) opens a NIfTI, NRRD or MetaImage file,\n"
    "File > Open DICOM folder... (Ctrl+D) a DICOM series,\n"
    "File > Open mask... (Ctrl+M) a label map on the CT's grid.\n\n"
    "From a shell: liverseg view CT.nii.gz --mask MASK.nii.gz";

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle("liverseg");
    buildCentralWidget();
    buildActions();
    buildStatusBar();
    setLoading(false);
    showWindowLevelStatus(sliceView_->windowLevel());
}

// Jobs capture only their own data; the watchers (children) are dropped with the window and
// the thread pool finishes any read still running.
MainWindow::~MainWindow() = default;

void MainWindow::buildCentralWidget() {
    pages_ = new QStackedWidget(this);
    emptyHint_ = new QLabel(kEmptyHint, pages_);
    emptyHint_->setObjectName("emptyHint");
    emptyHint_->setAlignment(Qt::AlignCenter);
    pages_->addWidget(emptyHint_);

    auto* viewerPage = new QWidget(pages_);
    auto* layout = new QHBoxLayout(viewerPage);
    layout->setContentsMargins(0, 0, 0, 0);
    sliceView_ = new render::SliceView(viewerPage);
    sliceView_->setObjectName("sliceView");
    sliceSlider_ = new QSlider(Qt::Vertical, viewerPage);
    sliceSlider_->setObjectName("sliceSlider");
    sliceSlider_->setToolTip("Axial slice (mouse wheel, PageUp/PageDown)");
    layout->addWidget(sliceView_, 1);
    layout->addWidget(sliceSlider_);
    pages_->addWidget(viewerPage);
    setCentralWidget(pages_);

    connect(sliceSlider_, &QSlider::valueChanged, sliceView_, &render::SliceView::setSlice);
    connect(sliceView_, &render::SliceView::sliceChanged, this, [this](int slice) {
        sliceSlider_->setValue(slice);
        showSliceStatus();
    });
    connect(sliceView_, &render::SliceView::windowLevelChanged, this, &MainWindow::showWindowLevelStatus);
    connect(sliceView_, &render::SliceView::probed, this, &MainWindow::showProbe);
}

void MainWindow::buildActions() {
    QMenu* fileMenu = menuBar()->addMenu("&File");
    openCtAction_ = fileMenu->addAction("Open &CT...", this, &MainWindow::chooseCtFile);
    openCtAction_->setShortcut(QKeySequence::Open);
    openDicomAction_ = fileMenu->addAction("Open &DICOM folder...", this, &MainWindow::chooseDicomFolder);
    openDicomAction_->setShortcut(Qt::CTRL | Qt::Key_D);
    openMaskAction_ = fileMenu->addAction("Open &mask...", this, &MainWindow::chooseMask);
    openMaskAction_->setShortcut(Qt::CTRL | Qt::Key_M);
    fileMenu->addSeparator();
    QAction* quit = fileMenu->addAction("&Quit", this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu* viewMenu = menuBar()->addMenu("&View");
    QAction* nextSlice = viewMenu->addAction("Next slice", this, [this]() { sliceView_->stepSlice(+1); });
    nextSlice->setShortcut(Qt::Key_PageUp);
    QAction* previousSlice = viewMenu->addAction("Previous slice", this, [this]() { sliceView_->stepSlice(-1); });
    previousSlice->setShortcut(Qt::Key_PageDown);
    viewMenu->addSeparator();

    QToolBar* toolBar = addToolBar("Main");
    toolBar->setObjectName("mainToolBar");
    toolBar->setMovable(false);
    toolBar->addAction(openCtAction_);
    toolBar->addAction(openMaskAction_);
    toolBar->addSeparator();

    presetActions_ = new QActionGroup(this);
    presetActions_->setExclusionPolicy(QActionGroup::ExclusionPolicy::ExclusiveOptional);
    for (const auto& preset : render::windowLevelPresets()) {
        QAction* action = presetActions_->addAction(QString::fromStdString(preset.label));
        action->setObjectName(QString::fromStdString("preset_" + preset.name));
        action->setData(QString::fromStdString(preset.name));
        action->setCheckable(true);
        action->setToolTip(QString("%1 window: W %2 / L %3 HU (right-drag on the image to adjust)")
                               .arg(QString::fromStdString(preset.label))
                               .arg(preset.value.window)
                               .arg(preset.value.level));
        const render::WindowLevel value = preset.value;
        connect(action, &QAction::triggered, this, [this, value]() {
            sliceView_->setWindowLevel(value);
            showWindowLevelStatus(sliceView_->windowLevel());  // a second click must not uncheck it
        });
        toolBar->addAction(action);
        viewMenu->addAction(action);
    }
}

void MainWindow::buildStatusBar() {
    sliceLabel_ = new QLabel(this);
    sliceLabel_->setObjectName("sliceLabel");
    windowLabel_ = new QLabel(this);
    windowLabel_->setObjectName("windowLabel");
    probeLabel_ = new QLabel(this);
    probeLabel_->setObjectName("probeLabel");
    orientationLabel_ = new QLabel(this);
    orientationLabel_->setObjectName("orientationLabel");
    statusBar()->addPermanentWidget(probeLabel_);
    statusBar()->addPermanentWidget(sliceLabel_);
    statusBar()->addPermanentWidget(windowLabel_);
    statusBar()->addPermanentWidget(orientationLabel_);
    statusBar()->showMessage("Open a CT with File > Open CT... (Ctrl+O)");
}

void MainWindow::chooseCtFile() {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open CT", QString(),
        "CT images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm);;All files (*)");
    if (!path.isEmpty()) openCt(path);
}

void MainWindow::chooseDicomFolder() {
    const QString path = QFileDialog::getExistingDirectory(this, "Open DICOM folder");
    if (!path.isEmpty()) openCt(path);
}

void MainWindow::chooseMask() {
    const QString path = QFileDialog::getOpenFileName(this, "Open mask", QString(),
                                                      "Label maps (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;All files (*)");
    if (!path.isEmpty()) openMask(path);
}

void MainWindow::openCt(const QString& path, const InitialView& view) {
    const std::filesystem::path ct = toPath(path);
    load("Reading " + path, [ct]() { return loadViewerDocument(ct, std::nullopt); }, view);
}

void MainWindow::openCtWithMask(const QString& ctPath, const QString& maskPath, const InitialView& view) {
    const std::filesystem::path ct = toPath(ctPath), mask = toPath(maskPath);
    load("Reading " + ctPath, [ct, mask]() { return loadViewerDocument(ct, mask); }, view);
}

void MainWindow::openMask(const QString& path) {
    if (!document_.ct) {
        showError("Open a CT before a mask: a mask must lie on the CT's voxel grid.");
        Q_EMIT loadFinished(false);
        return;
    }
    const std::filesystem::path mask = toPath(path);
    load("Reading " + path, [current = document_, mask]() { return withMask(current, mask); }, {});
}

void MainWindow::load(const QString& what, std::function<ViewerDocument()> work, const InitialView& view) {
    if (loading_) {
        showError("Still reading the previous file; try again when it is done.");
        Q_EMIT loadFinished(false);
        return;
    }
    setLoading(true);
    statusBar()->showMessage(what + "...");
    runInBackground<ViewerDocument>(
        this,
        [work = std::move(work), view]() {
            ViewerDocument document = work();
            if (view.slice) requireAxialSlice(*view.slice, document.ct->geometry());
            return document;
        },
        [this, view](JobResult<ViewerDocument> result) {
            setLoading(false);
            if (!result.value) {
                showError(result.error);
                Q_EMIT loadFinished(false);
                return;
            }
            showDocument(std::move(*result.value), view);
            Q_EMIT loadFinished(true);
        });
}

void MainWindow::showDocument(ViewerDocument document, const InitialView& view) {
    const bool newCt = document.ct != document_.ct;
    document_ = std::move(document);
    if (newCt) {
        // The slider's old range would clamp the new volume's slice.
        const QSignalBlocker quietSlider(sliceSlider_);
        sliceView_->setVolume(document_.ct);
        sliceSlider_->setRange(0, std::max(0, sliceView_->sliceCount() - 1));
        sliceSlider_->setValue(sliceView_->slice());
        const render::AxialLayout& layout = sliceView_->scene().layout();
        orientationLabel_->setText(
            layout.oblique ? QString("Oblique grid (%1): shown along the nearest axes")
                                 .arg(QString::fromStdString(layout.orientationCode))
                           : QString("Grid %1").arg(QString::fromStdString(layout.orientationCode)));
    }
    sliceView_->setOverlay(render::OverlaySlot::A, document_.mask);
    if (view.slice) sliceView_->setSlice(*view.slice);
    if (view.windowLevel) sliceView_->setWindowLevel(*view.windowLevel);
    pages_->setCurrentIndex(document_.ct ? 1 : 0);

    setWindowTitle(document_.ct ? "liverseg - " + fileName(document_.ctPath) : "liverseg");
    openMaskAction_->setEnabled(!loading_ && document_.ct);
    showSliceStatus();
    QString message;
    if (document_.ct) {
        const auto& size = document_.ct->size();
        message = QString("%1: %2 x %3 x %4 voxels").arg(fileName(document_.ctPath)).arg(size[0]).arg(size[1]).arg(size[2]);
        if (document_.mask) {
            message += QString("; mask %1: %2 labelled voxels")
                           .arg(fileName(document_.maskPath))
                           .arg(core::countNonZero(*document_.mask));
        }
        for (const auto& warning : document_.source.warnings) message += "; " + QString::fromStdString(warning);
    }
    statusBar()->showMessage(message);
}

void MainWindow::setLoading(bool loading) {
    loading_ = loading;
    openCtAction_->setEnabled(!loading);
    openDicomAction_->setEnabled(!loading);
    openMaskAction_->setEnabled(!loading && document_.ct);
    if (loading) {
        QApplication::setOverrideCursor(Qt::BusyCursor);
    } else if (QApplication::overrideCursor()) {
        QApplication::restoreOverrideCursor();
    }
}

void MainWindow::showError(const QString& message) {
    lastError_ = message;
    statusBar()->showMessage(message);
    auto* box = new QMessageBox(QMessageBox::Warning, "liverseg", message, QMessageBox::Ok, this);
    box->setObjectName("errorBox");
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

void MainWindow::showSliceStatus() {
    if (!document_.ct) {
        sliceLabel_->clear();
        return;
    }
    sliceLabel_->setText(QString("Slice %1 (0-%2)").arg(sliceView_->slice()).arg(sliceView_->sliceCount() - 1));
}

void MainWindow::showWindowLevelStatus(render::WindowLevel windowLevel) {
    windowLabel_->setText(QString("W %1 L %2").arg(windowLevel.window, 0, 'f', 0).arg(windowLevel.level, 0, 'f', 0));
    for (QAction* action : presetActions_->actions()) {
        const auto preset = render::findWindowLevelPreset(action->data().toString().toStdString());
        action->setChecked(preset && preset->value == windowLevel);
    }
}

void MainWindow::showProbe(const render::VoxelProbe& probe) {
    if (!probe.inside) {
        probeLabel_->clear();
        return;
    }
    probeLabel_->setText(QString("%1 HU at (%2, %3, %4) mm LPS, voxel (%5, %6, %7)")
                             .arg(probe.hu)
                             .arg(formatMm(probe.physical[0]), formatMm(probe.physical[1]), formatMm(probe.physical[2]))
                             .arg(probe.index[0])
                             .arg(probe.index[1])
                             .arg(probe.index[2]));
}

}  // namespace liverseg::ui
