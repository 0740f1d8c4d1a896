#pragma once

namespace liverseg::ui {

// Runs the viewer: `liverseg [view [FILE]] [--screenshot PNG]`. Returns the exit code.
int runViewer(int argc, char** argv);

}  // namespace liverseg::ui
