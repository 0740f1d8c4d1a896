#pragma once
// Ctrl-C and SIGTERM for long commands (train, finetune): the first signal asks the command
// to stop at its next safe point; a second one leaves at once without saving.
#include <csignal>
#include <string>

namespace liverseg::app {

// Installs the stop handlers for SIGINT and SIGTERM while it lives.
class StopSignals {
public:
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    static bool requested();
    static int signal();  // 0 while none arrived

private:
    struct sigaction previousInt_ {};
    struct sigaction previousTerm_ {};
};

// "SIGINT", "SIGTERM", or the number.
std::string signalName(int signal);

}  // namespace liverseg::app
