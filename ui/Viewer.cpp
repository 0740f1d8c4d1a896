#include "ui/Viewer.h"

#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "render/SliceView.h"
#include "render/VtkOpenGLWidget.h"
#include "ui/MainWindow.h"
#include "ui/ViewerDocument.h"
#include "ui/ViewerOptions.h"

#include <QApplication>
#include <QBuffer>
#include <QElapsedTimer>
#include <QPixmap>
#include <QWindow>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace liverseg::ui {

namespace {

// VTK's OpenGL loader (GLEW) speaks GLX only, so the viewer runs on X11 (XWayland on a
// Wayland desktop). Returns why it cannot start, if it cannot.
std::optional<std::string> chooseDisplayPlatform() {
    const QByteArray requested = qgetenv("QT_QPA_PLATFORM");
    if (requested.isEmpty() || requested.startsWith("wayland")) qputenv("QT_QPA_PLATFORM", "xcb");
    const QByteArray platform = qgetenv("QT_QPA_PLATFORM");
    if (platform.startsWith("offscreen") || platform.startsWith("minimal")) {
        return "the viewer draws with OpenGL and cannot run on QT_QPA_PLATFORM=" + platform.toStdString() +
               "; use an X display, e.g. xvfb-run -a liverseg ...";
    }
    if (platform.startsWith("xcb") && qgetenv("DISPLAY").isEmpty()) {
        return "no X display (DISPLAY is not set); without a screen run: xvfb-run -a liverseg ...";
    }
    return std::nullopt;
}

void waitUntilExposed(QWidget& window) {
    QElapsedTimer timer;
    timer.start();
    while (!(window.windowHandle() && window.windowHandle()->isExposed()) && timer.elapsed() < 10000) {
        QApplication::processEvents(QEventLoop::AllEvents, 50);
    }
    QApplication::processEvents();
}

void savePng(const QPixmap& picture, const std::filesystem::path& path) {
    QByteArray png;
    QBuffer buffer(&png);
    buffer.open(QIODevice::WriteOnly);
    if (!picture.save(&buffer, "PNG")) throw core::InputError("cannot encode the screenshot as PNG");
    core::writeAtomically(path, [&png, &path](const std::filesystem::path& temporary) {
        std::ofstream out(temporary, std::ios::binary);
        out.write(png.constData(), png.size());
        out.close();
        if (!out) throw core::InputError("cannot write the screenshot " + path.string());
    });
}

// Bad input is reported before any window exists, so it needs no display.
std::optional<ViewerDocument> loadForScreenshot(const ViewerOptions& options) {
    if (!options.ct) return std::nullopt;
    ViewerDocument document = loadViewerDocument(*options.ct, options.mask);
    if (options.slice) requireAxialSlice(*options.slice, document.ct->geometry());
    return document;
}

int takeScreenshot(int argc, char** argv, const ViewerOptions& options, std::optional<ViewerDocument> document) {
    QApplication application(argc, argv);
    MainWindow window;
    window.resize(options.size.width, options.size.height);
    if (document) window.showDocument(std::move(*document), InitialView{options.slice, options.windowLevel});
    window.show();
    waitUntilExposed(window);
    const QPixmap picture = window.grab();
    if (picture.isNull()) throw std::runtime_error("the window could not be captured");
    savePng(picture, *options.screenshot);
    std::cout << "wrote " << options.screenshot->string() << " (" << picture.width() << "x" << picture.height()
              << ")\n";
    return 0;
}

int runInteractive(int argc, char** argv, const ViewerOptions& options) {
    QApplication application(argc, argv);
    MainWindow window;
    window.resize(options.size.width, options.size.height);
    window.show();
    const InitialView view{options.slice, options.windowLevel};
    if (options.ct && options.mask) {
        window.openCtWithMask(QString::fromStdString(options.ct->string()), QString::fromStdString(options.mask->string()), view);
    } else if (options.ct) {
        window.openCt(QString::fromStdString(options.ct->string()), view);
    } else if (options.windowLevel) {
        window.sliceView()->setWindowLevel(*options.windowLevel);
    }
    return application.exec();
}

}  // namespace

int runViewer(int argc, char** argv) {
    ViewerOptions options;
    try {
        options = parseViewerOptions(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const ViewerUsageError& error) {
        std::cerr << "liverseg view: " << error.what() << " (liverseg view --help)\n";
        return 2;
    }
    if (options.help) {
        std::cout << viewerUsage();
        return 0;
    }
    try {
        std::optional<ViewerDocument> screenshotDocument;
        if (options.screenshot) screenshotDocument = loadForScreenshot(options);
        if (const auto problem = chooseDisplayPlatform()) {
            std::cerr << "liverseg view: " << *problem << "\n";
            return 2;
        }
        QApplication::setApplicationName("liverseg");
        render::VtkOpenGLWidget::installDefaultSurfaceFormat();
        if (options.screenshot) return takeScreenshot(argc, argv, options, std::move(screenshotDocument));
        return runInteractive(argc, argv, options);
    } catch (const core::InputError& error) {
        std::cerr << "liverseg view: " << error.what() << "\n";
        return 2;
    } catch (const std::bad_alloc&) {
        std::cerr << "liverseg view: out of memory\n";
        return 2;
    } catch (const std::exception& error) {
        std::cerr << "liverseg view: internal error: " << error.what() << "\n";
        return 1;
    }
}

}  // namespace liverseg::ui
