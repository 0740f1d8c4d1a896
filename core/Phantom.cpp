#include "core/Phantom.h"

#include <stdexcept>

namespace liverseg::core {

PhantomCase makeAbdominalPhantom(const PhantomOptions&) { throw std::logic_error("phantom: not written yet"); }

}  // namespace liverseg::core
