#include "app/TerminalProgress.h"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace liverseg::app {

std::string fixed(double value, int digits) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(digits) << value;
    return out.str();
}

TerminalProgress::TerminalProgress(std::string label)
    : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1), started_(std::chrono::steady_clock::now()) {}

void TerminalProgress::update(std::size_t done, std::size_t total) {
    if (!enabled_ || total == 0) return;
    constexpr int kWidth = 30;
    const int filled = int(double(done) / double(total) * kWidth);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu  %.1f s", label_.c_str(), filled,
                 "##############################", kWidth - filled, "", done, total, seconds);
    std::fflush(stderr);
    drawn_ = true;
}

void TerminalProgress::finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
}

}  // namespace liverseg::app
