#include "app/StopSignals.h"

#include <unistd.h>

#include <atomic>

namespace liverseg::app {
namespace {

std::atomic<int> gStopSignal{0};

extern "C" void onStopSignal(int signal) {
    if (gStopSignal.exchange(signal) != 0) {
        const char message[] = "\nliverseg: interrupted again; exiting without saving\n";
        [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message, sizeof message - 1);
        ::_exit(128 + signal);
    }
}

}  // namespace

StopSignals::StopSignals() {
    gStopSignal = 0;
    struct sigaction action {};
    action.sa_handler = onStopSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &previousInt_);
    ::sigaction(SIGTERM, &action, &previousTerm_);
}

StopSignals::~StopSignals() {
    ::sigaction(SIGINT, &previousInt_, nullptr);
    ::sigaction(SIGTERM, &previousTerm_, nullptr);
}

bool StopSignals::requested() { return gStopSignal.load() != 0; }

int StopSignals::signal() { return gStopSignal.load(); }

std::string signalName(int signal) {
    return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : std::to_string(signal);
}

}  // namespace liverseg::app
