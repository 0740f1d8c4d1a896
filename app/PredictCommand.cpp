#include "app/Commands.h"
#include "core/Errors.h"

namespace liverseg::app {

int runPredict(Arguments& arguments) {
    throw core::InputError("the predict command is not built yet");
}

}  // namespace liverseg::app
