#pragma once

namespace liverseg::ui {

// Runs the viewer: `liverseg [view] [CT] [--mask MASK] [--slice N]
// [--window W --level L | --preset NAME] [--screenshot PNG] [--size WxH]`.
// With --screenshot it renders once, saves the window as PNG and returns without an event
// loop. Bad input prints one line to stderr and returns 2. Returns the exit code.
int runViewer(int argc, char** argv);

}  // namespace liverseg::ui
