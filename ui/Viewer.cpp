#include "ui/Viewer.h"

#include <QApplication>
#include <QMainWindow>

namespace liverseg::ui {

int runViewer(int argc, char** argv) {
    QApplication application(argc, argv);
    QMainWindow window;
    window.setWindowTitle("liverseg");
    window.resize(1200, 800);
    window.show();
    return application.exec();
}

}  // namespace liverseg::ui
