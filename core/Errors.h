#pragma once
#include <stdexcept>
#include <string>

namespace liverseg::core {

// Something the user gave us (a file, an option, a checkpoint) is unusable. The message
// names the thing and what is wrong with it; front ends show it as one line.
class InputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A long operation stopped because the user asked it to; nothing was written.
class Cancelled : public std::runtime_error {
public:
    Cancelled() : std::runtime_error("cancelled") {}
};

}  // namespace liverseg::core
