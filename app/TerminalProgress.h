#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace liverseg::app {

// A one-line progress bar on stderr when it is a terminal; silent otherwise (logs and
// pipes get the summary lines only).
class TerminalProgress {
public:
    explicit TerminalProgress(std::string label);
    void update(std::size_t done, std::size_t total);
    void finish();

private:
    std::string label_;
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point started_;
};

// `value` with `digits` decimals ("0.9300"), for report lines.
std::string fixed(double value, int digits);

}  // namespace liverseg::app
